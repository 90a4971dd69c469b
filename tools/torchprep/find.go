package main

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Libtorch describes one libtorch installation: where its headers and
// libraries are, which version it is and whether it was built with CUDA.
type Libtorch struct {
	Kind     string   // "debian", "libtorch" ($LIBTORCH) or "wheel" (PyTorch's torch/ folder)
	Root     string   // the folder that was found
	Includes []string // -I folders, in order
	LibDir   string   // folder holding libtorch.so
	Version  string   // "1.13.0", "2.1.0", ...
	CUDA     bool     // libtorch_cuda.so sits beside libtorch.so
	CXX11ABI bool     // libc10 exports std::__cxx11 symbols
}

// Major and Minor parse Version; an unparsable version reads as 0.0.
func (l Libtorch) majorMinor() (int, int) {
	parts := strings.SplitN(l.Version, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	maj, _ := strconv.Atoi(parts[0])
	min, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return maj, min
}

// String is the one-line description printed by the tool.
func (l Libtorch) String() string {
	dev := "CPU"
	if l.CUDA {
		dev = "CUDA"
	}
	return fmt.Sprintf("libtorch %s (%s, %s build) at %s", l.Version, l.Kind, dev, l.Root)
}

// findLibtorch looks, in order, at $LIBTORCH, at the torch/ folder of a
// PyTorch wheel ($TORCH_WHEEL, or what `python3 -c 'import torch'` reports),
// and at Debian's libtorch-dev under /usr. The first complete one wins.
func findLibtorch() (Libtorch, error) {
	var tried []string
	if dir := os.Getenv("LIBTORCH"); dir != "" {
		l, err := layout("libtorch", dir, filepath.Join(dir, "include"), filepath.Join(dir, "lib"))
		if err != nil {
			return l, fmt.Errorf("$LIBTORCH=%s: %w", dir, err)
		}
		return l, nil
	}
	wheel := os.Getenv("TORCH_WHEEL")
	if wheel == "" {
		wheel = pythonTorchDir()
	}
	if wheel != "" {
		l, err := layout("wheel", wheel, filepath.Join(wheel, "include"), filepath.Join(wheel, "lib"))
		if err == nil {
			return l, nil
		}
		tried = append(tried, fmt.Sprintf("wheel %s: %v", wheel, err))
	}
	l, err := layout("debian", "/usr", "/usr/include", debianLibDir())
	if err == nil {
		return l, nil
	}
	tried = append(tried, fmt.Sprintf("debian /usr: %v", err))
	return Libtorch{}, fmt.Errorf("no libtorch found (install Debian's libtorch-dev with `make setup`, or set LIBTORCH to an unpacked libtorch, or TORCH_WHEEL to a PyTorch wheel's torch/ folder):\n  %s", strings.Join(tried, "\n  "))
}

// pythonTorchDir asks the first python with torch where it lives. Debian's
// python3-torch is skipped: it is the same libtorch as /usr, found below.
func pythonTorchDir() string {
	for _, py := range []string{"python3", "python"} {
		out, err := exec.Command(py, "-c", "import torch, os; print(os.path.dirname(torch.__file__))").Output()
		if err != nil {
			continue
		}
		dir := strings.TrimSpace(string(out))
		if strings.HasPrefix(dir, "/usr/lib/python3/dist-packages") {
			return ""
		}
		if _, err := os.Stat(filepath.Join(dir, "lib")); err == nil {
			return dir
		}
	}
	return ""
}

func debianLibDir() string {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"} {
		if _, err := os.Stat(filepath.Join(d, "libtorch.so")); err == nil {
			return d
		}
	}
	return "/usr/lib/x86_64-linux-gnu"
}

// layout checks that a candidate has the headers and libraries gotch needs
// and reads its version and build flavour.
func layout(kind, root, inc, lib string) (Libtorch, error) {
	l := Libtorch{Kind: kind, Root: root, LibDir: lib,
		Includes: []string{inc, filepath.Join(inc, "torch/csrc/api/include")}}
	if _, err := os.Stat(filepath.Join(lib, "libtorch.so")); err != nil {
		return l, errors.New("no libtorch.so in " + lib)
	}
	vh := filepath.Join(inc, "torch/csrc/api/include/torch/version.h")
	v, err := readVersion(vh)
	if err != nil {
		return l, err
	}
	l.Version = v
	if _, err := os.Stat(filepath.Join(lib, "libtorch_cuda.so")); err == nil {
		l.CUDA = true
	}
	l.CXX11ABI, err = cxx11ABI(filepath.Join(lib, "libc10.so"))
	if err != nil {
		return l, err
	}
	return l, nil
}

var versionRe = regexp.MustCompile(`#define TORCH_VERSION_(MAJOR|MINOR|PATCH) (\d+)`)

func readVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read libtorch version: %w", err)
	}
	defer f.Close()
	parts := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := versionRe.FindStringSubmatch(sc.Text()); m != nil {
			parts[m[1]] = m[2]
		}
	}
	if parts["MAJOR"] == "" || parts["MINOR"] == "" {
		return "", fmt.Errorf("%s: no TORCH_VERSION_MAJOR/MINOR", path)
	}
	if parts["PATCH"] == "" {
		parts["PATCH"] = "0"
	}
	return parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"], nil
}

// cxx11ABI tells whether libc10 was built with the new libstdc++ string ABI,
// which the bindings must match (PyTorch wheels before 2.6 used the old one).
func cxx11ABI(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", path, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false, fmt.Errorf("symbols of %s: %w", path, err)
	}
	for _, s := range syms {
		if strings.Contains(s.Name, "__cxx11") {
			return true, nil
		}
	}
	return false, nil
}
