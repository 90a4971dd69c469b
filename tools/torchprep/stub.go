package main

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// binding is one generated C function in torch_api_generated.cpp.h: its
// name and the lines [Start, End] (1-based, inclusive) of its definition.
type binding struct {
	Name       string
	Start, End int
}

var defRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_ \*]*\b(atg_[A-Za-z0-9_]+)\(.*\) \{$`)

// parseBindings splits the generated file into its functions. The generator
// writes each as "sig {", a PROTECT( ... ) block, an optional return, "}".
func parseBindings(src string) ([]binding, error) {
	var out []binding
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		m := defRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		b := binding{Name: m[1], Start: i + 1}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "}" {
				b.End = j + 1
				break
			}
		}
		if b.End == 0 {
			return nil, fmt.Errorf("binding %s at line %d has no closing brace", b.Name, b.Start)
		}
		out = append(out, b)
		i = b.End - 1
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no atg_ bindings found")
	}
	return out, nil
}

// bindingsAt returns the names of the bindings that contain the given lines.
func bindingsAt(bs []binding, lines []int) ([]string, error) {
	seen := map[string]bool{}
	for _, ln := range lines {
		i := sort.Search(len(bs), func(i int) bool { return bs[i].End >= ln })
		if i == len(bs) || bs[i].Start > ln {
			return nil, fmt.Errorf("compile error at line %d is outside every binding", ln)
		}
		seen[bs[i].Name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// stubBindings replaces the PROTECT body of each named binding with a throw,
// so a call reaches Go as an ordinary torch error naming the op and version.
// The signature and any trailing "return 0;" stay, so the C ABI is unchanged.
func stubBindings(src string, names []string, version string) (string, error) {
	bs, err := parseBindings(src)
	if err != nil {
		return "", err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	lines := strings.Split(src, "\n")
	var out []string
	prev := 0
	for _, b := range bs {
		if !want[b.Name] {
			continue
		}
		delete(want, b.Name)
		body := lines[b.Start-1 : b.End]
		open, close := -1, -1
		for k, l := range body {
			if strings.TrimSpace(l) == "PROTECT(" && open < 0 {
				open = k
			}
			if strings.TrimSpace(l) == ")" {
				close = k
			}
		}
		if open < 0 || close < open {
			return "", fmt.Errorf("binding %s: no PROTECT( ... ) block", b.Name)
		}
		out = append(out, lines[prev:b.Start-1+open+1]...)
		out = append(out, fmt.Sprintf("    throw std::runtime_error(%q);",
			fmt.Sprintf("%s: not available in libtorch %s (gotch binding stubbed by torchprep)", strings.TrimPrefix(b.Name, "atg_"), version)))
		prev = b.Start - 1 + close
	}
	if len(want) > 0 {
		var missing []string
		for n := range want {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return "", fmt.Errorf("bindings not found: %s", strings.Join(missing, ", "))
	}
	out = append(out, lines[prev:]...)
	return strings.Join(out, "\n"), nil
}
