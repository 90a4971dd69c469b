package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// schema is the set of keys a config struct accepts, from its mapstructure
// tags: leaves with their Go types, and prefixes of map-valued fields under
// which any sub-key is allowed (a sweep grid, say).
type schema struct {
	leaves map[string]reflect.Type
	open   map[string]bool
}

func schemaOf(cfg any) schema {
	s := schema{leaves: map[string]reflect.Type{}, open: map[string]bool{}}
	s.walk(reflect.TypeOf(cfg), "")
	return s
}

func (s schema) walk(t reflect.Type, prefix string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for _, k := range keyedFields(t) {
		key := prefix + k.name
		ft := t.Field(k.index).Type
		squash := k.squash
		switch {
		case squash:
			s.walk(ft, prefix)
		case ft.Kind() == reflect.Struct:
			s.walk(ft, key+".")
		case ft.Kind() == reflect.Map:
			s.open[key] = true
			s.leaves[key] = ft
		default:
			s.leaves[key] = ft
		}
	}
}

// keyedField is a struct field that takes part in the config: its index,
// its key and whether it is squashed into its parent.
type keyedField struct {
	index  int
	name   string
	squash bool
}

// keyedFields lists the exported fields of struct type t not tagged "-".
func keyedFields(t reflect.Type) []keyedField {
	var out []keyedField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if name, squash := tagName(f); name != "-" {
			out = append(out, keyedField{i, name, squash})
		}
	}
	return out
}

// tagName returns the lower-case key of a field and whether it is squashed
// into its parent.
func tagName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("mapstructure")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return strings.ToLower(name), strings.Contains(opts, "squash")
}

// checkKey accepts known leaves and keys below open maps; anything else is
// reported with the closest known key.
func (s schema) checkKey(key string) error {
	if _, ok := s.leaves[key]; ok {
		return nil
	}
	for p := range s.open {
		if strings.HasPrefix(key, p+".") {
			return nil
		}
	}
	if s.isSection(key) {
		return nil
	}
	if near := s.closest(key); near != "" {
		return fmt.Errorf("unknown key %q (did you mean %q?)", key, near)
	}
	return fmt.Errorf("unknown key %q", key)
}

// isSection is true for a key that names a struct (viper reports a
// section set to an empty map that way).
func (s schema) isSection(key string) bool {
	for k := range s.leaves {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

func (s schema) closest(key string) string {
	keys := make([]string, 0, len(s.leaves))
	for k := range s.leaves {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	best, bestD := "", 1<<30
	for _, k := range keys {
		d := levenshtein(key, k)
		// A key in the wrong section ("steps" for "train.steps", or
		// "train.device" for "device") is close too.
		if lastPart(k) == lastPart(key) {
			d = 1
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	if bestD > len(key)/2+1 {
		return ""
	}
	return best
}

func lastPart(k string) string {
	if i := strings.LastIndex(k, "."); i >= 0 {
		return k[i+1:]
	}
	return k
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkType compares a YAML value with the Go type of its field, so that
// "steps: ten" fails with a message about train.steps rather than a
// decoder's internals.
func (s schema) checkType(key string, val any) error {
	t, ok := s.leaves[key]
	if !ok || val == nil {
		return nil
	}
	if err := fits(t, val); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func fits(t reflect.Type, val any) error {
	if t == autoIntType {
		return fitsAutoInt(val)
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		switch v := val.(type) {
		case int, int64, uint64:
			return nil
		case float64:
			if v == float64(int64(v)) {
				return nil
			}
		}
		return fmt.Errorf("want an integer, got %s", describe(val))
	case reflect.Float32, reflect.Float64:
		switch val.(type) {
		case int, int64, uint64, float64:
			return nil
		}
		return fmt.Errorf("want a number, got %s", describe(val))
	case reflect.Bool:
		if _, ok := val.(bool); ok {
			return nil
		}
		return fmt.Errorf("want true or false, got %s", describe(val))
	case reflect.String:
		if _, ok := val.(string); ok {
			return nil
		}
		return fmt.Errorf("want a string, got %s", describe(val))
	case reflect.Slice:
		list, ok := val.([]any)
		if !ok {
			return fmt.Errorf("want a list, got %s", describe(val))
		}
		for i, e := range list {
			if err := fits(t.Elem(), e); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		return nil
	case reflect.Map:
		if _, ok := val.(map[string]any); !ok {
			return fmt.Errorf("want a mapping, got %s", describe(val))
		}
	}
	return nil
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q (a string)", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case bool:
		return fmt.Sprintf("%v (a boolean)", x)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// toMap turns a config struct into nested maps keyed by mapstructure tags.
func toMap(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == autoIntType {
		// A count is written as the integer it is, so the dump reads like
		// the file a user writes and loads back.
		if n, auto, err := AutoInt(v.String()).Value(); err == nil && !auto {
			return n
		}
		return v.String()
	}
	if v.Kind() != reflect.Struct {
		return v.Interface()
	}
	m := map[string]any{}
	t := v.Type()
	for _, k := range keyedFields(t) {
		name := k.name
		sub := toMap(v.Field(k.index))
		if sm, ok := sub.(map[string]any); ok && k.squash {
			for k, x := range sm {
				m[k] = x
			}
			continue
		}
		m[name] = sub
	}
	return m
}
