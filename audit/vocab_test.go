package audit_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// The vocabulary tests read the source: what matters is what the code
// writes, and a new event type that skips audit/events.go should fail here,
// at merge, naming the line to fix.

const (
	modulePath = "github.com/gatehouse-dev/gatehouse"
	fixHint    = "use an audit.Type constant; a new type goes into audit/events.go (and its fields into audit.Fields) and the README \"Audit log\" table"
)

// vocabulary parses audit/events.go: constant name -> event type.
func vocabulary(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	vocab := map[string]string{}
	seen := map[string]string{}
	eachConst(f, func(n *ast.Ident, value ast.Expr) {
		if !strings.HasPrefix(n.Name, "Type") {
			return
		}
		lit, ok := value.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Fatalf("audit/events.go: %s must be a string literal", n.Name)
		}
		v, _ := strconv.Unquote(lit.Value)
		if other, dup := seen[v]; dup {
			t.Errorf("audit/events.go: %s and %s are both %q", other, n.Name, v)
		}
		seen[v] = n.Name
		vocab[n.Name] = v
	})
	if len(vocab) == 0 {
		t.Fatal("audit/events.go defines no Type constants")
	}
	return vocab
}

// eachConst calls visit with every constant declared with a value in f.
func eachConst(f *ast.File, visit func(name *ast.Ident, value ast.Expr)) {
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					visit(n, vs.Values[i])
				}
			}
		}
	}
}

// sourceFile is one parsed non-test Go file of the module.
type sourceFile struct {
	rel  string // slash path from the module root
	file *ast.File
}

// parseModule parses the module's non-test Go files, grouped by directory.
func parseModule(t *testing.T, root string) (*token.FileSet, map[string][]sourceFile) {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string][]sourceFile{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		// Object resolution links a local variable to its declaration,
		// which the field check follows (a map built up in a function).
		f, err := parser.ParseFile(fset, rel, readFile(t, path), 0)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		pkgs[dir] = append(pkgs[dir], sourceFile{rel: rel, file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fset, pkgs
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// typeChecker finds every storage.Event literal's Type and checks that it
// is a vocabulary constant, following a Type taken from a parameter of the
// enclosing function (a package's private audit helper) to every call of
// that function in the package. It checks the event's field names against
// the type's in fields the same way (fields_test.go).
type typeChecker struct {
	fset     *token.FileSet
	pkgs     map[string][]sourceFile
	vocab    map[string]string
	used     map[string]bool
	problems []string

	fields        map[string][]string        // event type -> its field names
	written       map[string]map[string]bool // event type -> field names seen written
	unseen        map[string]bool            // event types written with a key the check cannot read
	counts        fieldCounts
	fieldProblems []string
	seen          map[string]bool // problems already reported
}

func (c *typeChecker) run() {
	// Source that holds storage.Events without writing new ones: the
	// stores and their conformance suites keep whatever they are given,
	// and Verify rebuilds stored events to report them.
	notWriters := []string{"storage/", "audit/verify.go"}
	dirs := make([]string, 0, len(c.pkgs))
	for d := range c.pkgs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		for _, sf := range c.pkgs[dir] {
			if slices.ContainsFunc(notWriters, func(p string) bool { return strings.HasPrefix(sf.rel, p) }) {
				continue
			}
			c.file(dir, sf)
		}
	}
}

func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path[strings.LastIndex(path, "/")+1:]
		}
	}
	return ""
}

func (c *typeChecker) file(dir string, sf sourceFile) {
	storageName := importName(sf.file, modulePath+"/storage")
	if storageName == "" {
		return
	}
	isEvent := func(e ast.Expr) bool {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Event" {
			return false
		}
		x, ok := sel.X.(*ast.Ident)
		return ok && x.Name == storageName
	}
	for _, decl := range sf.file.Decls {
		fn, _ := decl.(*ast.FuncDecl)
		ast.Inspect(decl, func(n ast.Node) bool {
			cl, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			switch typ := cl.Type.(type) {
			case *ast.ArrayType:
				if isEvent(typ.Elt) {
					for _, el := range cl.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							el = kv.Value
						}
						if inner, ok := el.(*ast.CompositeLit); ok && inner.Type == nil {
							c.event(dir, sf, fn, inner)
						}
					}
				}
			case *ast.MapType:
				if isEvent(typ.Value) {
					for _, el := range cl.Elts {
						if inner, ok := el.(*ast.KeyValueExpr).Value.(*ast.CompositeLit); ok && inner.Type == nil {
							c.event(dir, sf, fn, inner)
						}
					}
				}
			default:
				if isEvent(cl.Type) {
					c.event(dir, sf, fn, cl)
				}
			}
			return true
		})
	}
}

// event checks one storage.Event literal.
func (c *typeChecker) event(dir string, sf sourceFile, fn *ast.FuncDecl, cl *ast.CompositeLit) {
	if len(cl.Elts) == 0 {
		return // a zero Event to fill in, or to read into
	}
	for _, el := range cl.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			c.problem(cl.Pos(), "a storage.Event literal without field names: name its fields and set Type: "+fixHint)
			return
		}
		if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Type" {
			c.typeValue(dir, sf, fn, kv.Value, 0)
			if fields := eventField(cl, "Fields"); fields != nil {
				c.eventFields(dir, sf, fn, kv.Value, fields, 0)
			}
			return
		}
	}
	c.problem(cl.Pos(), "a storage.Event without a Type: set it: "+fixHint)
}

// eventField is the value of a storage.Event literal's field name, or nil.
func eventField(cl *ast.CompositeLit, name string) ast.Expr {
	for _, el := range cl.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == name {
				return kv.Value
			}
		}
	}
	return nil
}

// vocabName is the vocabulary constant e names (audit.TypeX, or TypeX
// inside package audit), if it names one.
func (c *typeChecker) vocabName(dir string, sf sourceFile, e ast.Expr) (string, bool) {
	switch v := e.(type) {
	case *ast.SelectorExpr:
		auditName := importName(sf.file, modulePath+"/audit")
		if x, ok := v.X.(*ast.Ident); ok && auditName != "" && x.Name == auditName {
			_, ok := c.vocab[v.Sel.Name]
			return v.Sel.Name, ok
		}
	case *ast.Ident:
		if dir == "audit" {
			_, ok := c.vocab[v.Name]
			return v.Name, ok
		}
	}
	return "", false
}

// typeValue checks an expression that becomes an event's Type.
func (c *typeChecker) typeValue(dir string, sf sourceFile, fn *ast.FuncDecl, e ast.Expr, depth int) {
	if name, ok := c.vocabName(dir, sf, e); ok {
		c.used[name] = true
		return
	}
	switch v := e.(type) {
	case *ast.Ident:
		if i := paramIndex(fn, v.Name); i >= 0 && depth < 5 {
			c.eachCall(dir, fn.Name.Name, func(sf sourceFile, caller *ast.FuncDecl, call *ast.CallExpr) {
				if i < len(call.Args) {
					c.typeValue(dir, sf, caller, call.Args[i], depth+1)
				}
			})
			return
		}
	case *ast.BasicLit:
		c.problem(e.Pos(), fmt.Sprintf("event type is the string literal %s: %s", v.Value, fixHint))
		return
	}
	c.problem(e.Pos(), fmt.Sprintf("event type is %s, which is not in the audit vocabulary: %s", types.ExprString(e), fixHint))
}

// eachCall calls visit for every call of the function or method name in
// package dir, with the file and function the call is in.
func (c *typeChecker) eachCall(dir, name string, visit func(sf sourceFile, fn *ast.FuncDecl, call *ast.CallExpr)) {
	for _, sf := range c.pkgs[dir] {
		for _, decl := range sf.file.Decls {
			fn, _ := decl.(*ast.FuncDecl)
			ast.Inspect(decl, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok && calledName(call) == name {
					visit(sf, fn, call)
				}
				return true
			})
		}
	}
}

// calledName is the name of the function or method call calls, or "".
func calledName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// paramIndex is the position of the parameter called name in fn, or -1.
func paramIndex(fn *ast.FuncDecl, name string) int {
	if fn == nil {
		return -1
	}
	i := 0
	for _, field := range fn.Type.Params.List {
		for _, n := range field.Names {
			if n.Name == name {
				return i
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	return -1
}

func (c *typeChecker) problem(pos token.Pos, msg string) {
	c.report(&c.problems, pos, msg)
}

// report adds a problem to list once: a helper's line can be reached from
// several calls.
func (c *typeChecker) report(list *[]string, pos token.Pos, msg string) {
	p := fmt.Sprintf("%s: %s", c.fset.Position(pos), msg)
	if !c.seen[p] {
		c.seen[p] = true
		*list = append(*list, p)
	}
}

// checkModule runs the type and field checks over the module at root, with
// vocab (constant name -> type) and fields (type -> its field names).
func checkModule(t *testing.T, root string, vocab map[string]string, fields map[string][]string) *typeChecker {
	t.Helper()
	fset, pkgs := parseModule(t, root)
	c := &typeChecker{fset: fset, pkgs: pkgs, vocab: vocab, used: map[string]bool{},
		fields: fields, written: map[string]map[string]bool{}, unseen: map[string]bool{}, seen: map[string]bool{}}
	c.run()
	return c
}

func TestEveryWrittenTypeIsInTheVocabulary(t *testing.T) {
	vocab := vocabulary(t)
	c := checkModule(t, "..", vocab, audit.Fields())
	for _, p := range c.problems {
		t.Error(p)
	}
	for _, name := range slices.Sorted(maps.Keys(vocab)) {
		if v := vocab[name]; !c.used[name] {
			t.Errorf("audit/events.go: %s (%q) is in the vocabulary but no code writes it: write it, or remove it from events.go and the README \"Audit log\" table", name, v)
		}
	}
}

// TestVocabularyCheckCatches proves the check above fails where it should:
// on a literal, on a constant of the package's own, and through a private
// helper that takes the type as a parameter.
func TestVocabularyCheckCatches(t *testing.T) {
	src := `package p

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

const AuditMine = "mine.done"

type S struct{ a audit.Appender }

func (s *S) audit(ctx context.Context, typ, actor string) {
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: typ, Actor: actor})
}

func (s *S) run(ctx context.Context) {
	s.audit(ctx, audit.TypeExec, "bob")
	s.audit(ctx, "literal.via_helper", "bob")
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: "literal.direct"})
	evs := []storage.Event{{Type: AuditMine}, {Type: audit.TypeSessionStart}}
	_ = audit.Append(ctx, s.a, nil, evs...)
	_ = audit.Append(ctx, s.a, nil, storage.Event{Actor: "no type"})
}
`
	c := checkSource(t, src, map[string]string{"TypeExec": "exec", "TypeSessionStart": "session.start"}, nil)
	wantProblems(t, c.problems, []*regexp.Regexp{
		regexp.MustCompile(`^p/p\.go:20:15: event type is the string literal "literal\.via_helper": use an audit\.Type constant`),
		regexp.MustCompile(`^p/p\.go:21:54: event type is the string literal "literal\.direct"`),
		regexp.MustCompile(`^p/p\.go:22:32: event type is AuditMine, which is not in the audit vocabulary`),
		regexp.MustCompile(`^p/p\.go:24:34: a storage\.Event without a Type`),
	})
	if !c.used["TypeExec"] || !c.used["TypeSessionStart"] {
		t.Errorf("used = %v, want both vocabulary types seen", c.used)
	}
}

// auditLogSection is the README's "Audit log" section.
func auditLogSection(t *testing.T) string {
	t.Helper()
	readme := string(readFile(t, filepath.Join("..", "README.md")))
	start := strings.Index(readme, "\n## Audit log\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Audit log" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	return section
}

// checkSource runs the checks over a module of one file, p/p.go.
func checkSource(t *testing.T, src string, vocab map[string]string, fields map[string][]string) *typeChecker {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "p", "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return checkModule(t, root, vocab, fields)
}

// wantProblems fails unless got are as many problems as want, each
// matching its pattern.
func wantProblems(t *testing.T, got []string, want []*regexp.Regexp) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("problem %d = %q, want it to match %s", i, got[i], re)
		}
	}
}

// TestREADMEListsEveryType keeps the README's "Audit log" table and the
// vocabulary the same set.
func TestREADMEListsEveryType(t *testing.T) {
	vocab := vocabulary(t)
	section := auditLogSection(t)
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` +\\|")
	inREADME := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		if inREADME[m[1]] {
			t.Errorf("README Audit log table lists %q twice", m[1])
		}
		inREADME[m[1]] = true
	}
	types := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(vocab)) {
		v := vocab[name]
		types[v] = name
		if !inREADME[v] {
			t.Errorf("README.md \"Audit log\" table has no row for %q (audit.%s): add one with its actor, target and fields", v, name)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(inREADME)) {
		if _, ok := types[v]; !ok {
			t.Errorf("README.md \"Audit log\" table lists %q, which audit/events.go does not define: remove the row or add the type", v)
		}
	}
}
