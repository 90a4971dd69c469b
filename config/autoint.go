package config

import (
	"fmt"
	"reflect"
	"strconv"
)

// AutoInt is a count that may also be the word "auto", which its consumer
// resolves (`threads: auto` or `threads: 2`). YAML gives an integer or a
// string; both decode into it, and anything else is a type error naming
// the key, like every other field.
type AutoInt string

// Auto is the "decide for me" value of an AutoInt.
const Auto AutoInt = "auto"

var autoIntType = reflect.TypeOf(AutoInt(""))

// Value is the count, or auto = true for "auto". A value that is neither
// a positive integer nor "auto" is an error (Validate methods call it).
func (a AutoInt) Value() (n int, auto bool, err error) {
	if a == Auto {
		return 0, true, nil
	}
	n, err = strconv.Atoi(string(a))
	if err != nil || n < 1 {
		return 0, false, fmt.Errorf("%q: want auto or a positive integer", string(a))
	}
	return n, false, nil
}

// fitsAutoInt accepts what YAML may give for an AutoInt.
func fitsAutoInt(val any) error {
	switch v := val.(type) {
	case int, int64, uint64:
		return nil
	case string:
		if AutoInt(v) == Auto {
			return nil
		}
	}
	return fmt.Errorf("want auto or an integer, got %s", describe(val))
}

// autoIntHook decodes an integer into an AutoInt (the strict decoder
// converts nothing by itself).
func autoIntHook(from, to reflect.Type, data any) (any, error) {
	if to != autoIntType {
		return data, nil
	}
	switch v := data.(type) {
	case int:
		return AutoInt(strconv.Itoa(v)), nil
	case int64:
		return AutoInt(strconv.FormatInt(v, 10)), nil
	case uint64:
		return AutoInt(strconv.FormatUint(v, 10)), nil
	}
	return data, nil
}
