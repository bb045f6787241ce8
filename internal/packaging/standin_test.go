package packaging

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Stand-in base images for TestDockerImage. The Dockerfile's real bases
// (golang:1.26-bookworm, gcr.io/distroless/base-debian12:nonroot) need a
// registry, and none is reachable from the machines this project is tested
// on. Both are Debian bookworm underneath, so the stand-ins are imported
// from what a Debian host has installed: its packages' files (as dpkg
// lists them) and its Go toolchain.

// standIn is a base image made on the host.
type standIn struct {
	// changes are the image settings of the real base (Dockerfile
	// instructions for `docker import --change`), so the Dockerfile meets
	// the environment it will meet there.
	changes []string
	// write writes the root filesystem as a tar stream.
	write func(ctx context.Context, w io.Writer) error
}

// goStandIn stands in for golang:1.26-bookworm.
func goStandIn() standIn {
	return standIn{
		changes: []string{
			"ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"ENV GOPATH=/go",
			"ENV GOTOOLCHAIN=local",
			"WORKDIR /go",
		},
		write: writeGoImage,
	}
}

// runtimeStandIn stands in for gcr.io/distroless/base-debian12:nonroot.
func runtimeStandIn() standIn {
	return standIn{
		changes: []string{
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			"USER 65532",
			"WORKDIR /home/nonroot",
		},
		write: writeRuntimeImage,
	}
}

// The users of the distroless images: root, nobody and nonroot (65532).
const (
	runtimePasswd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	runtimeGroup = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

// writeGoImage writes the build stand-in's root filesystem as a tar
// stream: gcc and libc headers, sh, coreutils, CA certificates (for the
// module proxy) and the host's Go toolchain at /usr/local/go.
func writeGoImage(ctx context.Context, w io.Writer) error {
	// A C compiler for cgo (SQLite), and the shell and mkdir the
	// Dockerfile's RUN lines use; their dependencies come along.
	pkgs, err := debianClosure(ctx, "gcc", "libc6-dev", "dash", "coreutils")
	if err != nil {
		return err
	}
	files, err := debianFiles(ctx, pkgs...)
	if err != nil {
		return err
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	r := newRootfs(w)
	r.dir("tmp", 0o1777, 0)
	r.dir("root", 0o700, 0)
	r.dir("go", 0o1777, 0)
	r.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0)
	r.file("etc/group", "root:x:0:\n", 0)
	for _, f := range append(files, "/bin/sh", "/etc/ssl/certs/ca-certificates.crt") {
		r.addHost(f)
	}
	r.addTree(strings.TrimSpace(string(goroot)), "/usr/local/go")
	return r.close()
}

// writeRuntimeImage writes the runtime stand-in's root filesystem: glibc,
// libssl, time zones, CA certificates and the distroless users.
func writeRuntimeImage(ctx context.Context, w io.Writer) error {
	// What distroless/base ships that a program can use (no shell, no
	// package manager), taken without dependencies, as distroless does.
	files, err := debianFiles(ctx, "libc6", "libgcc-s1", "libssl3", "tzdata", "netbase")
	if err != nil {
		return err
	}
	r := newRootfs(w)
	r.dir("tmp", 0o1777, 0)
	r.dir("home/nonroot", 0o700, 65532)
	r.file("etc/passwd", runtimePasswd, 0)
	r.file("etc/group", runtimeGroup, 0)
	r.file("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n", 0)
	for _, f := range append(files, "/etc/ssl/certs/ca-certificates.crt") {
		r.addHost(f)
	}
	return r.close()
}

// debianClosure returns the installed packages that roots depend on,
// roots included.
func debianClosure(ctx context.Context, roots ...string) ([]string, error) {
	args := append([]string{"depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, roots...)
	out, err := exec.CommandContext(ctx, "apt-cache", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache depends %s: %w", strings.Join(roots, " "), err)
	}
	var pkgs []string
	for _, line := range strings.Split(string(out), "\n") {
		// Package names start a line; dependencies are indented, and
		// virtual packages are shown as <name>.
		if line != "" && line[0] != ' ' && line[0] != '<' {
			pkgs = append(pkgs, line)
		}
	}
	return pkgs, nil
}

// debianFiles lists the paths the installed packages own.
func debianFiles(ctx context.Context, pkgs ...string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", append([]string{"-L"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query -L %s: %w", strings.Join(pkgs, " "), err)
	}
	var files []string
	for _, line := range strings.Split(string(out), "\n") {
		// Diversion notes ("diverted by ...") are not paths.
		if strings.HasPrefix(line, "/") {
			files = append(files, line)
		}
	}
	return files, nil
}

// rootfs writes a root filesystem of host files as a tar stream for
// `docker import`. The first error sticks and is returned by close.
type rootfs struct {
	tw   *tar.Writer
	seen map[string]bool
	err  error
}

func newRootfs(w io.Writer) *rootfs {
	return &rootfs{tw: tar.NewWriter(w), seen: map[string]bool{}}
}

// addHost copies a host path to the same place in the image, its parent
// directories resolved first: on a merged-/usr host dpkg lists /bin/dash,
// which lands at /usr/bin/dash beside the image's own bin -> usr/bin link.
// Paths the host does not have (excluded from its install) are left out.
func (r *rootfs) addHost(path string) {
	path = filepath.Clean(path)
	if path == "/" {
		return
	}
	// Documentation: nothing in a build or at run time reads it.
	for _, p := range []string{"/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/", "/usr/share/lintian/"} {
		if strings.HasPrefix(path, p) {
			return
		}
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return
	}
	r.put(filepath.Join(dir, filepath.Base(path)), filepath.Join(dir, filepath.Base(path)), false)
}

// addTree copies the host directory src to dst in the image.
func (r *rootfs) addTree(src, dst string) {
	if r.err != nil {
		return
	}
	err := filepath.WalkDir(src, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		r.put(path, filepath.Join(dst, rel), true)
		return r.err
	})
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("copy %s: %w", src, err)
	}
}

// put writes the host path src as dst. A path that vanished is skipped
// unless required.
func (r *rootfs) put(src, dst string, required bool) {
	name := strings.TrimPrefix(dst, "/")
	if r.err != nil || name == "" || r.seen[name] {
		return
	}
	fi, err := os.Lstat(src)
	if err != nil {
		if required {
			r.err = err
		}
		return
	}
	var link string
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		if link, err = os.Readlink(src); err != nil {
			r.err = err
			return
		}
	case fi.Mode().IsRegular(), fi.IsDir():
	default:
		return // devices, sockets and pipes have no place in a base image
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		r.err = err
		return
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	r.seen[name] = true
	if r.err = r.tw.WriteHeader(hdr); r.err != nil || !fi.Mode().IsRegular() {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		r.err = err
		return
	}
	defer f.Close()
	if _, err := io.Copy(r.tw, f); err != nil {
		r.err = fmt.Errorf("copy %s: %w", src, err)
	}
}

// dir adds a directory that the host paths do not provide.
func (r *rootfs) dir(name string, mode int64, uid int) {
	if r.err != nil || r.seen[name] {
		return
	}
	r.seen[name] = true
	r.err = r.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid})
}

// file adds a small file of the image's own.
func (r *rootfs) file(name, body string, uid int) {
	if r.err != nil || r.seen[name] {
		return
	}
	r.seen[name] = true
	if r.err = r.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), Uid: uid, Gid: uid}); r.err == nil {
		_, r.err = io.WriteString(r.tw, body)
	}
}

func (r *rootfs) close() error {
	if r.err != nil {
		return r.err
	}
	return r.tw.Close()
}
