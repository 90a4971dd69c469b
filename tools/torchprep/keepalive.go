package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// generatedGo is gotch's file of generated op bindings.
const generatedGo = "ts/tensor-generated.go"

// signature matches a binding's first line: optional receiver, name and
// parameter list (the generated parameters hold no parentheses).
var signature = regexp.MustCompile(`^func\s*(?:\((\w+) \*Tensor\))?\s*\w+\(([^)]*)\)`)

// patchKeepAlive makes every generated binding keep its tensor and scalar
// arguments reachable until its C call has returned. gotch frees a
// Tensor's or a Scalar's C++ object in a finalizer, and an argument written
// inline, as in x.MustScatterValue(-1, idx, ts.FloatScalar(0), false), is
// unreachable as soon as its C pointer has been loaded: a collection
// during the call may free the scalar while libtorch reads it. Seen once,
// in an evaluation of a finished run, as "ScatterValue() failed: …
// toFloat at Scalar.h:89" (a freed Scalar's tag). runtime.KeepAlive
// after the call closes the window. It returns the calls patched.
func patchKeepAlive(modDir string) (int, error) {
	path := filepath.Join(modDir, filepath.FromSlash(generatedGo))
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(string(b), "\n")
	var alive []string // the current binding's pointer arguments
	n := 0
	for i, line := range lines {
		code := strings.TrimLeft(line, " \t")
		if m := signature.FindStringSubmatch(code); m != nil {
			alive = alive[:0]
			if m[1] != "" {
				alive = append(alive, m[1])
			}
			for _, p := range strings.Split(m[2], ",") {
				f := strings.Fields(p)
				if len(f) == 2 && (f[1] == "*Tensor" || f[1] == "*Scalar" || f[1] == "[]*Tensor" || f[1] == "[]*Scalar") {
					alive = append(alive, f[0])
				}
			}
			continue
		}
		if !strings.HasPrefix(code, "lib.Atg") || len(alive) == 0 {
			continue
		}
		keep := make([]string, len(alive))
		for k, a := range alive {
			keep[k] = "runtime.KeepAlive(" + a + ")"
		}
		lines[i] = line + "\n" + line[:len(line)-len(code)] + strings.Join(keep, "; ")
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: no binding calls found to keep their arguments alive", generatedGo)
	}
	src := strings.Join(lines, "\n")
	const imports = "import(\n"
	if !strings.Contains(src, imports) {
		return 0, fmt.Errorf("%s: no import block to add runtime to", generatedGo)
	}
	src = strings.Replace(src, imports, imports+"  \"runtime\"\n", 1)
	return n, os.WriteFile(path, []byte(src), 0o644)
}
