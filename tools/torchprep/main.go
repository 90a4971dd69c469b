// Command torchprep makes gotch build against whatever libtorch this machine
// has. gotch v0.9.1 is generated for libtorch 2.1 and compiles its C++
// bindings inside the Go package; against other versions (Debian's 1.13,
// say) about a hundred bindings do not compile. torchprep
//
//  1. finds libtorch ($LIBTORCH, a PyTorch wheel's torch/ folder, or /usr),
//  2. compiles gotch's bindings once into .torch/lib/libtch_gotch.so,
//     replacing the body of each binding the compiler rejects by a thrown
//     error naming the op and the libtorch version,
//  3. copies the gotch module to .torch/gotch with a lib.go that links that
//     library, and writes go.work to select the copy,
//  4. compiles the project's C API over libtorch's distributed layer
//     (dist/c10d, used by package dist) into .torch/lib/libdifflm_c10d.so.
//
// All outputs are git-ignored. A second run with the same inputs does
// nothing. With -lib-only it only (re)builds the library from .torch/src,
// which is how a GPU machine without Go gets bindings for its libtorch.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// format changes whenever the preparation itself changes, so stale
// preparations are redone.
const format = "torchprep-7"

func main() {
	root := flag.String("root", ".", "repository root (holds go.mod)")
	out := flag.String("out", ".torch", "folder for the prepared module and library, relative to -root")
	libOnly := flag.Bool("lib-only", false, "only rebuild the shared library from <out>/src for the libtorch found here (no Go needed)")
	force := flag.Bool("force", false, "prepare again even if up to date")
	flag.Parse()
	if err := run(*root, *out, *libOnly, *force); err != nil {
		fmt.Fprintln(os.Stderr, "torchprep:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Printf("torchprep: "+format+"\n", args...) }

func run(root, outRel string, libOnly, force bool) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	out := filepath.Join(root, outRel)
	l, err := findLibtorch()
	if err != nil {
		return err
	}
	logf("found %s (C++11 ABI: %v)", l, l.CXX11ABI)
	if libOnly {
		if err := buildLib(l, out, force); err != nil {
			return err
		}
		return buildC10d(l, root, out, force)
	}

	modDir, modVersion, err := gotchDir(root)
	if err != nil {
		return err
	}
	maj, min := l.majorMinor()
	if maj == 2 && min == 1 && l.CUDA && upstreamBuilds(root) {
		logf("libtorch 2.1 is gotch's own target and upstream gotch builds here: nothing to prepare")
		return removeGoWork(root)
	}

	key := prepKey(l, modVersion)
	st, ok := readStamp(filepath.Join(out, "stamp.json"))
	_, libErr := os.Stat(filepath.Join(out, "lib", "libtch_gotch.so"))
	_, workErr := os.Stat(filepath.Join(root, "go.work"))
	if ok && st.Key == key && libErr == nil && workErr == nil && !force {
		logf("up to date (%d bindings stubbed for libtorch %s)", len(st.Stubbed), l.Version)
		return buildC10d(l, root, out, false)
	}

	t0 := time.Now()
	if err := copySources(filepath.Join(modDir, "libtch"), filepath.Join(out, "src", "pristine")); err != nil {
		return fmt.Errorf("copy gotch sources: %w", err)
	}
	if err := buildLib(l, out, force); err != nil {
		return err
	}
	gotchCopy := filepath.Join(out, "gotch")
	if err := copyModule(modDir, gotchCopy); err != nil {
		return fmt.Errorf("copy gotch module: %w", err)
	}
	if err := writeLibGo(gotchCopy, filepath.Join(out, "lib"), l); err != nil {
		return err
	}
	patched, err := patchGo(gotchCopy)
	if err != nil {
		return fmt.Errorf("patch gotch: %w", err)
	}
	alive, err := patchKeepAlive(gotchCopy)
	if err != nil {
		return fmt.Errorf("patch gotch: %w", err)
	}
	logf("patched gotch's Go bindings in %d places (C.malloc(0) output arrays: leak and overflow; 100 kB per-tensor ballast) and kept the arguments of %d calls alive through them (finalizers)", patched, alive)
	goVer, err := goModVersion(root)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(root, gotchCopy)
	if err := writeGoWork(root, goVer, modVersion, rel); err != nil {
		return err
	}
	st, _ = readStamp(filepath.Join(out, "stamp.json"))
	st.Key = key
	if err := writeStamp(filepath.Join(out, "stamp.json"), st); err != nil {
		return err
	}
	logf("prepared gotch %s in %s, go.work written (%s)", modVersion, rel, time.Since(t0).Round(time.Second))
	return buildC10d(l, root, out, force)
}

// buildLib stubs and compiles the bindings for l from <out>/src/pristine.
func buildLib(l Libtorch, out string, force bool) error {
	stampPath := filepath.Join(out, "stamp.json")
	st, _ := readStamp(stampPath)
	pristineHash, err := hashFile(filepath.Join(out, "src", "pristine", generatedFile))
	if err != nil {
		return fmt.Errorf("gotch sources: %w (run torchprep without -lib-only first)", err)
	}
	libKey := fmt.Sprintf("%s abi=%v src=%s", l, l.CXX11ABI, pristineHash)
	if !force && st.Torch == libKey {
		if _, err := os.Stat(filepath.Join(out, "lib", "libtch_gotch.so")); err == nil {
			logf("library up to date for %s", l)
			return nil
		}
	}
	pristine := filepath.Join(out, "src", "pristine")
	work := filepath.Join(out, "src", "build")
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(pristine)
	if err != nil {
		return fmt.Errorf("gotch sources: %w (run torchprep without -lib-only first)", err)
	}
	for _, e := range entries {
		if err := copyFile(filepath.Join(pristine, e.Name()), filepath.Join(work, e.Name())); err != nil {
			return err
		}
	}
	logf("checking which bindings compile against libtorch %s (about a minute per pass on 2 cores)", l.Version)
	stubbed, err := stubUntilClean(l, work, logf)
	if err != nil {
		return err
	}
	if len(stubbed) > 0 {
		list := strings.Join(stubbed, "\n")
		os.WriteFile(filepath.Join(out, "stubbed.txt"), []byte(list+"\n"), 0o644)
		logf("stubbed %d bindings (listed in %s): %s", len(stubbed), filepath.Join(out, "stubbed.txt"), strings.Join(stubbed, " "))
	}
	t0 := time.Now()
	if err := buildShared(l, work, filepath.Join(out, "lib")); err != nil {
		return err
	}
	logf("built %s (%s)", filepath.Join(out, "lib", "libtch_gotch.so"), time.Since(t0).Round(time.Second))
	st.Torch = libKey
	st.Stubbed = stubbed
	return writeStamp(stampPath, st)
}

// gotchDir downloads (if needed) the gotch version go.mod requires and
// returns its folder in the module cache.
func gotchDir(root string) (dir, version string, err error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", gotchModule)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	b, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go list %s: %w", gotchModule, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "" {
		dl := exec.Command("go", "mod", "download", gotchModule)
		dl.Dir = root
		if out, err := dl.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go mod download %s: %w\n%s", gotchModule, err, out)
		}
		return gotchDir(root)
	}
	return f[0], f[1], nil
}

// upstreamBuilds compiles unmodified gotch; only tried where it can work.
func upstreamBuilds(root string) bool {
	cmd := exec.Command("go", "build", gotchModule+"/libtch")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	return cmd.Run() == nil
}

func removeGoWork(root string) error {
	p := filepath.Join(root, "go.work")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	if strings.Contains(string(b), "tools/torchprep") {
		return os.Remove(p)
	}
	return nil
}

func goModVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("go.mod has no go line")
}

func hashFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// prepKey hashes everything the preparation depends on.
func prepKey(l Libtorch, gotchVersion string) string {
	h := sha256.New()
	gxx, _ := exec.Command("g++", "-dumpfullversion").Output()
	fmt.Fprintln(h, format, gotchVersion, l, l.CXX11ABI, strings.TrimSpace(string(gxx)), runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:16]
}
