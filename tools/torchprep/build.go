package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const generatedFile = "torch_api_generated.cpp.h"

// cxxFlags are the compiler flags for gotch's bindings against l.
func cxxFlags(l Libtorch, srcDir string) []string {
	flags := []string{"-std=c++17", "-O2", "-fPIC", "-w", "-I" + srcDir}
	for _, inc := range l.Includes {
		flags = append(flags, "-I"+inc)
	}
	if l.CXX11ABI {
		flags = append(flags, "-D_GLIBCXX_USE_CXX11_ABI=1")
	} else {
		flags = append(flags, "-D_GLIBCXX_USE_CXX11_ABI=0")
	}
	return flags
}

// linkFlags are the libraries the bindings' shared library needs. The
// rpath lets the Go binary find libtorch without LD_LIBRARY_PATH.
func linkFlags(l Libtorch) []string {
	flags := []string{"-L" + l.LibDir, "-Wl,-rpath," + l.LibDir, "-Wl,--no-as-needed",
		"-ltorch", "-ltorch_cpu", "-lc10"}
	if l.CUDA {
		flags = append(flags, "-ltorch_cuda", "-lc10_cuda")
	}
	return append(flags, "-Wl,--as-needed", "-lstdc++")
}

var errLineRe = regexp.MustCompile(regexp.QuoteMeta(generatedFile) + `:(\d+):\d+: (?:error|required from here)`)

// failingLines runs the compiler in syntax-only mode over torch_api.cpp and
// returns the generated-file lines it rejects. Any error elsewhere is fatal:
// only generated bindings may be stubbed.
func failingLines(l Libtorch, srcDir string) ([]int, string, error) {
	args := append(cxxFlags(l, srcDir), "-fsyntax-only", "-fmax-errors=0", filepath.Join(srcDir, "torch_api.cpp"))
	cmd := exec.Command("g++", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil, "", nil
	}
	if _, ok := err.(*exec.ExitError); !ok {
		return nil, "", fmt.Errorf("run g++: %w", err)
	}
	seen := map[int]bool{}
	var other []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if m := errLineRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			seen[n] = true
		} else if strings.Contains(line, ": error:") && !strings.Contains(line, generatedFile) {
			other = append(other, line)
		}
	}
	if len(seen) == 0 {
		return nil, stderr.String(), fmt.Errorf("compile errors outside the generated bindings:\n%s", strings.Join(firstN(other, 10), "\n"))
	}
	lines := make([]int, 0, len(seen))
	for n := range seen {
		lines = append(lines, n)
	}
	sort.Ints(lines)
	return lines, stderr.String(), nil
}

// stubUntilClean stubs failing bindings until the file compiles, returning
// every stubbed name. Errors from template instantiation can hide others, so
// it repeats; a fixed point with errors left is reported, not looped on.
func stubUntilClean(l Libtorch, srcDir string, logf func(string, ...any)) ([]string, error) {
	path := filepath.Join(srcDir, generatedFile)
	var all []string
	for round := 1; round <= 6; round++ {
		t0 := time.Now()
		lines, stderr, err := failingLines(l, srcDir)
		if err != nil {
			if stderr != "" {
				os.WriteFile(filepath.Join(srcDir, "compile-errors.log"), []byte(stderr), 0o644)
			}
			return nil, err
		}
		if len(lines) == 0 {
			logf("syntax check %d: clean (%s)", round, time.Since(t0).Round(time.Second))
			return all, nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		bs, err := parseBindings(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		names, err := bindingsAt(bs, lines)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		patched, err := stubBindings(string(raw), names, l.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := os.WriteFile(path, []byte(patched), 0o644); err != nil {
			return nil, err
		}
		logf("syntax check %d: %d bindings do not compile against libtorch %s; stubbed (%s)",
			round, len(names), l.Version, time.Since(t0).Round(time.Second))
		all = append(all, names...)
	}
	return nil, fmt.Errorf("bindings still fail to compile after 6 rounds of stubbing")
}

// buildShared compiles the (possibly stubbed) bindings into libtch_gotch.so.
func buildShared(l Libtorch, srcDir, libDir string) error {
	if err := os.MkdirAll(libDir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(libDir, "libtch_gotch.so.tmp")
	args := append(cxxFlags(l, srcDir), "-shared", "-o", tmp, filepath.Join(srcDir, "torch_api.cpp"))
	args = append(args, linkFlags(l)...)
	cmd := exec.Command("g++", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("g++ %s: %w\n%s", strings.Join(args, " "), err, firstN(strings.Split(string(out), "\n"), 30))
	}
	return os.Rename(tmp, filepath.Join(libDir, "libtch_gotch.so"))
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
