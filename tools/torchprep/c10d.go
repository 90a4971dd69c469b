package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// c10dLib is the shared library of the project's c10d shim (package dist).
const c10dLib = "libdifflm_c10d.so"

// c10dSources are the shim's files, in dist/c10d of the repository; they
// are copied to <out>/src/c10d so that -lib-only on a machine with the
// preparation but no checkout (README, On a GPU machine) finds them.
var c10dSources = []string{"c10d.cpp", "c10d.h"}

// buildC10d compiles the C API over libtorch's distributed layer
// (dist/c10d) into <out>/lib/libdifflm_c10d.so, unless the library there
// was built from the same sources for the same libtorch. Gloo is always in;
// NCCL when libtorch is a CUDA build and nccl.h is found.
func buildC10d(l Libtorch, root, out string, force bool) error {
	srcDir := filepath.Join(out, "src", "c10d")
	if _, err := os.Stat(filepath.Join(root, "dist", "c10d", c10dSources[0])); err == nil {
		if err := os.MkdirAll(srcDir, 0o755); err != nil {
			return err
		}
		for _, f := range c10dSources {
			if err := copyFile(filepath.Join(root, "dist", "c10d", f), filepath.Join(srcDir, f)); err != nil {
				return fmt.Errorf("c10d shim: %w", err)
			}
		}
	}
	var h []string
	for _, src := range c10dSources {
		sum, err := hashFile(filepath.Join(srcDir, src))
		if err != nil {
			return fmt.Errorf("c10d shim: %w (neither dist/c10d nor a copy in %s)", err, srcDir)
		}
		h = append(h, src+"="+sum)
	}
	nccl := ncclInclude(l)
	key := fmt.Sprintf("%s abi=%v %s nccl=%q", l, l.CXX11ABI, strings.Join(h, " "), nccl)
	stampPath := filepath.Join(out, "stamp.json")
	st, _ := readStamp(stampPath)
	lib := filepath.Join(out, "lib", c10dLib)
	if _, err := os.Stat(lib); err == nil && st.C10d == key && !force {
		logf("c10d library up to date")
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	args := append(cxxFlags(l, srcDir), "-DUSE_C10D_GLOO")
	if nccl != "" {
		args = append(args, "-DUSE_C10D_NCCL", "-I"+nccl)
	}
	args = append(args, "-shared", "-o", lib+".tmp", filepath.Join(srcDir, c10dSources[0]))
	args = append(args, linkFlags(l)...)
	if b, err := exec.Command("g++", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("c10d shim: g++ %s: %w\n%s", strings.Join(args, " "), err,
			strings.Join(firstN(strings.Split(string(b), "\n"), 30), "\n"))
	}
	if err := os.Rename(lib+".tmp", lib); err != nil {
		return err
	}
	backends := "gloo"
	if nccl != "" {
		backends += ", nccl"
	} else if l.CUDA {
		logf("c10d: libtorch is a CUDA build but nccl.h was not found (set NCCL_INCLUDE to its folder): the c10d library has Gloo only")
	}
	logf("built %s (backends: %s; %s)", lib, backends, time.Since(t0).Round(time.Second))
	st, _ = readStamp(stampPath) // buildLib may have written it meanwhile
	st.C10d = key
	return writeStamp(stampPath, st)
}

// ncclInclude is the folder holding nccl.h for a CUDA libtorch: $NCCL_INCLUDE,
// libtorch's own include folders, or the nvidia-nccl wheel beside a
// PyTorch wheel. It is "" for a CPU libtorch or when none holds it.
func ncclInclude(l Libtorch) string {
	if !l.CUDA {
		return ""
	}
	dirs := []string{os.Getenv("NCCL_INCLUDE")}
	dirs = append(dirs, l.Includes...)
	dirs = append(dirs, filepath.Join(l.Root, "..", "nvidia", "nccl", "include"), "/usr/include", "/usr/local/cuda/include")
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "nccl.h")); err == nil {
			return d
		}
	}
	return ""
}
