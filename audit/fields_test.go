package audit_test

import (
	"fmt"
	"go/ast"
	"go/token"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// The field check: every field name an event is written with must be one
// of its type's in audit.Fields. It follows what a reader would: a map
// literal; a local map, its declaration and every m["key"] = ... in the
// function; a helper that returns a map (innerAuth.addTo, a closure); and
// a helper that takes the type and the fields as parameters, to each of
// its calls. A key built at run time is understood as far as string
// literals, constants, + and a range over a literal list go; what the
// check cannot follow it skips, and counts.

// fieldKeys are the keys one Fields value is written with.
type fieldKeys struct {
	keys    []fieldKey
	dynamic bool // some key, or where the map came from, is not known from the source
}

type fieldKey struct {
	name string
	pos  token.Pos
}

func (k *fieldKeys) add(o fieldKeys) {
	k.keys = append(k.keys, o.keys...)
	k.dynamic = k.dynamic || o.dynamic
}

// fieldCounts count the (event, type) pairs the field check resolved:
// every key known, some keys known, or none (fields or type unknown).
type fieldCounts struct{ checked, partial, skipped int }

// eventFields checks the Fields value fields of an event whose Type is typ,
// both in function fn.
func (c *typeChecker) eventFields(dir string, sf sourceFile, fn *ast.FuncDecl, typ, fields ast.Expr, depth int) {
	fid, _ := fields.(*ast.Ident)
	j := -1
	if fid != nil {
		j = paramIndex(fn, fid.Name)
	}
	if j < 0 {
		c.checkKeys(dir, sf, fn, typ, c.keys(dir, fn, fields, 0), depth)
		return
	}
	// The fields come from the caller: check each call's, with the
	// call's type when that is a parameter too.
	if depth >= 5 {
		c.counts.skipped++
		return
	}
	tid, _ := typ.(*ast.Ident)
	i := -1
	if tid != nil {
		i = paramIndex(fn, tid.Name)
	}
	c.eachCall(dir, fn.Name.Name, func(csf sourceFile, caller *ast.FuncDecl, call *ast.CallExpr) {
		if j >= len(call.Args) || i >= len(call.Args) {
			return
		}
		if i >= 0 {
			c.eventFields(dir, csf, caller, call.Args[i], call.Args[j], depth+1)
		} else {
			c.checkKeys(dir, sf, fn, typ, c.keys(dir, caller, call.Args[j], 0), depth+1)
		}
	})
}

// checkKeys checks keys against the fields of the type typ names in fn,
// following a type parameter to every call of fn.
func (c *typeChecker) checkKeys(dir string, sf sourceFile, fn *ast.FuncDecl, typ ast.Expr, keys fieldKeys, depth int) {
	name, ok := c.vocabName(dir, sf, typ)
	if !ok {
		if id, isID := typ.(*ast.Ident); isID && depth < 5 {
			if i := paramIndex(fn, id.Name); i >= 0 {
				c.eachCall(dir, fn.Name.Name, func(csf sourceFile, caller *ast.FuncDecl, call *ast.CallExpr) {
					if i < len(call.Args) {
						c.checkKeys(dir, csf, caller, call.Args[i], keys, depth+1)
					}
				})
				return
			}
		}
		c.counts.skipped++ // the type check reports the type
		return
	}
	typeValue := c.vocab[name]
	switch {
	case keys.dynamic && len(keys.keys) == 0:
		c.counts.skipped++
	case keys.dynamic:
		c.counts.partial++
	default:
		c.counts.checked++
	}
	if keys.dynamic {
		c.unseen[typeValue] = true
	}
	if c.fields == nil {
		return
	}
	allowed, known := c.fields[typeValue]
	if !known {
		c.report(&c.fieldProblems, typ.Pos(), fmt.Sprintf("audit.Fields has no entry for %q (audit.%s): add one", typeValue, name))
		return
	}
	if c.written[typeValue] == nil {
		c.written[typeValue] = map[string]bool{}
	}
	for _, k := range keys.keys {
		c.written[typeValue][k.name] = true
		if !slices.Contains(allowed, k.name) {
			c.report(&c.fieldProblems, k.pos, fmt.Sprintf("field %q is not a field of %s (audit.%s): use one of its fields, or add it to audit.Fields in audit/events.go and to the README \"Audit log\" table", k.name, typeValue, name))
		}
	}
}

// keys are the keys of the map e evaluates to in fn.
func (c *typeChecker) keys(dir string, fn *ast.FuncDecl, e ast.Expr, depth int) fieldKeys {
	var k fieldKeys
	if depth > 5 {
		k.dynamic = true
		return k
	}
	switch v := e.(type) {
	case *ast.ParenExpr:
		return c.keys(dir, fn, v.X, depth+1)
	case *ast.CompositeLit:
		if _, ok := v.Type.(*ast.MapType); !ok {
			k.dynamic = true
			return k
		}
		for _, el := range v.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				k.add(c.keyNames(dir, kv.Key))
			}
		}
	case *ast.Ident:
		if v.Name == "nil" && v.Obj == nil {
			return k
		}
		if v.Obj == nil || v.Obj.Kind != ast.Var {
			k.dynamic = true
			return k
		}
		assigned, found := c.assignedKeys(dir, fn, v, depth)
		k.add(assigned)
		if _, param := v.Obj.Decl.(*ast.Field); !found && !param {
			k.dynamic = true
		}
	case *ast.CallExpr:
		if f, ok := v.Fun.(*ast.Ident); ok && f.Name == "make" && f.Obj == nil {
			return k
		}
		k.add(c.returnedKeys(dir, fn, v, depth))
	default:
		k.dynamic = true
	}
	return k
}

// assignedKeys are the keys of the map variable v gets where fn declares or
// assigns it, and from every v["key"] = ... in fn; found is whether fn
// declares or assigns it at all.
func (c *typeChecker) assignedKeys(dir string, fn *ast.FuncDecl, v *ast.Ident, depth int) (k fieldKeys, found bool) {
	if fn == nil {
		return k, false
	}
	ast.Inspect(fn, func(n ast.Node) bool {
		var lhs, rhs []ast.Expr
		switch s := n.(type) {
		case *ast.AssignStmt:
			lhs, rhs = s.Lhs, s.Rhs
		case *ast.ValueSpec:
			for _, n := range s.Names {
				lhs = append(lhs, n)
			}
			rhs = s.Values
		default:
			return true
		}
		for i, l := range lhs {
			switch l := l.(type) {
			case *ast.Ident:
				if l.Obj == v.Obj && l != v {
					found = true
					if len(rhs) == len(lhs) {
						k.add(c.keys(dir, fn, rhs[i], depth+1))
					} else if len(rhs) > 0 {
						k.dynamic = true
					}
				}
			case *ast.IndexExpr:
				if m, ok := l.X.(*ast.Ident); ok && m.Obj == v.Obj {
					k.add(c.keyNames(dir, l.Index))
				}
			}
		}
		return true
	})
	return k, found
}

// returnedKeys are the keys of the map call returns: a closure declared in
// fn, or a function or method of package dir, which may add keys to a map
// it is given (innerAuth.addTo).
func (c *typeChecker) returnedKeys(dir string, fn *ast.FuncDecl, call *ast.CallExpr, depth int) fieldKeys {
	var k fieldKeys
	var body *ast.BlockStmt
	var callee *ast.FuncDecl // for a closure, fn
	if f, ok := call.Fun.(*ast.Ident); ok && f.Obj != nil && f.Obj.Kind == ast.Var {
		if as, ok := f.Obj.Decl.(*ast.AssignStmt); ok && len(as.Lhs) == len(as.Rhs) {
			for i, l := range as.Lhs {
				if l.(*ast.Ident).Name == f.Name {
					if lit, ok := as.Rhs[i].(*ast.FuncLit); ok {
						body, callee = lit.Body, fn
					}
				}
			}
		}
	} else if name := calledName(call); name != "" {
		var decls []*ast.FuncDecl
		for _, sf := range c.pkgs[dir] {
			for _, d := range sf.file.Decls {
				if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == name && d.Body != nil {
					decls = append(decls, d)
				}
			}
		}
		if len(decls) == 1 {
			body, callee = decls[0].Body, decls[0]
		}
	}
	if body == nil {
		k.dynamic = true
		return k
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false // its returns are not this function's
		case *ast.ReturnStmt:
			if len(n.Results) != 1 {
				k.dynamic = true
				return false
			}
			r := n.Results[0]
			if id, ok := r.(*ast.Ident); ok && callee != fn {
				if j := paramIndex(callee, id.Name); j >= 0 {
					// The map it was given, with what it added.
					if j < len(call.Args) {
						k.add(c.keys(dir, fn, call.Args[j], depth+1))
					}
					added, _ := c.assignedKeys(dir, callee, id, depth+1)
					k.add(added)
					return false
				}
			}
			k.add(c.keys(dir, callee, r, depth+1))
			return false
		}
		return true
	})
	return k
}

// keyNames are the strings a map key expression can be: a string literal,
// a constant of the package, s + t, or a variable ranging over a literal
// list of strings.
func (c *typeChecker) keyNames(dir string, e ast.Expr) fieldKeys {
	names, ok := c.stringValues(dir, e, 0)
	var k fieldKeys
	if !ok {
		k.dynamic = true
		return k
	}
	for _, n := range names {
		k.keys = append(k.keys, fieldKey{name: n, pos: e.Pos()})
	}
	return k
}

func (c *typeChecker) stringValues(dir string, e ast.Expr, depth int) ([]string, bool) {
	if depth > 5 {
		return nil, false
	}
	switch v := e.(type) {
	case *ast.ParenExpr:
		return c.stringValues(dir, v.X, depth+1)
	case *ast.BasicLit:
		if v.Kind != token.STRING {
			return nil, false
		}
		s, err := strconv.Unquote(v.Value)
		return []string{s}, err == nil
	case *ast.BinaryExpr:
		if v.Op != token.ADD {
			return nil, false
		}
		xs, ok1 := c.stringValues(dir, v.X, depth+1)
		ys, ok2 := c.stringValues(dir, v.Y, depth+1)
		if !ok1 || !ok2 {
			return nil, false
		}
		var out []string
		for _, x := range xs {
			for _, y := range ys {
				out = append(out, x+y)
			}
		}
		return out, true
	case *ast.Ident:
		if v.Obj != nil && v.Obj.Kind == ast.Var {
			// for _, name := range [...]string{"a", "b"}: the parser
			// declares name in an assignment from "range X".
			as, ok := v.Obj.Decl.(*ast.AssignStmt)
			if !ok || len(as.Rhs) != 1 {
				return nil, false
			}
			u, ok := as.Rhs[0].(*ast.UnaryExpr)
			if !ok || u.Op != token.RANGE || len(as.Lhs) != 2 || as.Lhs[1].(*ast.Ident).Name != v.Name {
				return nil, false
			}
			lit, ok := u.X.(*ast.CompositeLit)
			if !ok {
				return nil, false
			}
			var out []string
			for _, el := range lit.Elts {
				s, ok := c.stringValues(dir, el, depth+1)
				if !ok {
					return nil, false
				}
				out = append(out, s...)
			}
			return out, true
		}
		// A constant of the package, in any of its files.
		var value ast.Expr
		for _, sf := range c.pkgs[dir] {
			eachConst(sf.file, func(n *ast.Ident, e ast.Expr) {
				if n.Name == v.Name {
					value = e
				}
			})
		}
		if value != nil {
			return c.stringValues(dir, value, depth+1)
		}
	}
	return nil, false
}

func TestEveryWrittenFieldIsInTheVocabulary(t *testing.T) {
	vocab := vocabulary(t)
	fields := audit.Fields()
	for _, name := range slices.Sorted(maps.Keys(vocab)) {
		list, ok := fields[vocab[name]]
		if !ok {
			t.Errorf("audit.Fields has no entry for %q (audit.%s): add one, {} if it carries none", vocab[name], name)
		}
		for i, f := range list {
			if slices.Contains(list[:i], f) {
				t.Errorf("audit.Fields lists %q twice for %q", f, vocab[name])
			}
		}
	}
	if len(fields) != len(vocab) {
		t.Errorf("audit.Fields has %d types, the vocabulary %d: every key must be a Type constant", len(fields), len(vocab))
	}
	c := checkModule(t, "..", vocab, fields)
	for _, p := range c.fieldProblems {
		t.Error(p)
	}
	// The other way: a field no code writes is a stale entry. Not asked
	// of a type some of whose fields the check cannot see.
	for _, typ := range slices.Sorted(maps.Keys(fields)) {
		if c.unseen[typ] {
			continue
		}
		for _, f := range fields[typ] {
			if !c.written[typ][f] {
				t.Errorf("audit.Fields lists %q for %q, but no code writes it: remove it there and from the README \"Audit log\" table", f, typ)
			}
		}
	}
	t.Logf("event fields checked: %d fully, %d in part (some keys built at run time); %d skipped (fields or type not followed)",
		c.counts.checked, c.counts.partial, c.counts.skipped)
	if c.counts.checked == 0 {
		t.Error("the field check resolved no event's fields")
	}
}

// TestFieldCheckCatches proves the field check fails where it should: a
// literal's key, a key added later, one added by a helper that returns
// the map, and fields passed through a private helper with the type.
func TestFieldCheckCatches(t *testing.T) {
	src := `package p

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

const keyCommand = "command"

type S struct{ a audit.Appender }

func (s *S) audit(ctx context.Context, typ string, fields map[string]any) {
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: typ, Fields: fields})
}

func withRule(m map[string]any) map[string]any {
	m["rule"] = "r"
	return m
}

func (s *S) run(ctx context.Context, dynamic string) {
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: audit.TypeExec, Fields: map[string]any{keyCommand: "ls", "cmd": "ls"}})
	s.audit(ctx, audit.TypeExec, map[string]any{"session": "s1", "sesion": "s1"})
	f := map[string]any{"login": "root"}
	for _, n := range [...]string{"stdin", "stdout"} {
		f[n+"_bytes"] = 1
	}
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: audit.TypeExec, Fields: f})
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: audit.TypeExec, Fields: withRule(map[string]any{"login": "root"})})
	_ = audit.Append(ctx, s.a, nil, storage.Event{Type: audit.TypeExec, Fields: map[string]any{dynamic: 1}})
	s.audit(ctx, audit.TypeSessionStart, nil)
}
`
	c := checkSource(t, src, map[string]string{"TypeExec": "exec", "TypeSessionStart": "session.start"},
		map[string][]string{"exec": {"session", "login", "command"}, "session.start": {}})
	if len(c.problems) != 0 {
		t.Errorf("type problems: %q", c.problems)
	}
	slices.Sort(c.fieldProblems)
	wantProblems(t, c.fieldProblems, []*regexp.Regexp{
		regexp.MustCompile(`^p/p\.go:19:4: field "rule" is not a field of exec`),
		regexp.MustCompile(`^p/p\.go:24:111: field "cmd" is not a field of exec \(audit\.TypeExec\): use one of its fields, or add it to audit\.Fields`),
		regexp.MustCompile(`^p/p\.go:25:63: field "sesion" is not a field of exec`),
		regexp.MustCompile(`^p/p\.go:28:5: field "stdin_bytes" is not a field of exec`),
		regexp.MustCompile(`^p/p\.go:28:5: field "stdout_bytes" is not a field of exec`),
	})
	if want := (fieldCounts{checked: 5, skipped: 1}); c.counts != want {
		t.Errorf("counts = %+v, want %+v", c.counts, want)
	}
}

// TestREADMEListsEveryField keeps each row of the README's "Audit log"
// table naming its type's fields, in backquotes, as audit.Fields does; a
// row may say "as `other.type`" for another row's fields.
func TestREADMEListsEveryField(t *testing.T) {
	fields := audit.Fields()
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` +\\|.*\\|([^|]*)\\|$")
	quoted := regexp.MustCompile("`([^`]+)`")
	inREADME := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(auditLogSection(t), -1) {
		for _, q := range quoted.FindAllStringSubmatch(m[2], -1) {
			inREADME[m[1]] = append(inREADME[m[1]], q[1])
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(fields)) {
		var listed []string
		for _, f := range inREADME[typ] {
			if other, ok := inREADME[f]; ok && strings.Contains(f, ".") {
				listed = append(listed, other...)
			} else {
				listed = append(listed, f)
			}
		}
		for _, f := range fields[typ] {
			if !slices.Contains(listed, f) {
				t.Errorf("README.md \"Audit log\" row %q does not name its field `%s` (audit.Fields): add it", typ, f)
			}
		}
		for _, f := range listed {
			if !slices.Contains(fields[typ], f) {
				t.Errorf("README.md \"Audit log\" row %q names `%s`, which audit.Fields does not list for it: remove it, or add it there", typ, f)
			}
		}
	}
}
