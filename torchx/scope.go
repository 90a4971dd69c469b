package torchx

import "github.com/sugarme/gotch/ts"

// Scope frees intermediates deterministically. The Go GC does not see the
// C++ memory behind a tensor, so waiting for finalizers lets RSS grow during
// training; instead, a function registers each intermediate with T and
// calls Close (usually deferred), which drops all of them except the ones
// it handed out with Keep.
//
//	s := torchx.NewScope()
//	defer s.Close()
//	h := s.T(x.MustMatmul(w, false))
//	return s.Keep(s.T(h.MustGelu("none", false)))
type Scope struct {
	ts   []*ts.Tensor
	keep map[*ts.Tensor]bool
}

// NewScope starts an empty scope.
func NewScope() *Scope { return &Scope{keep: map[*ts.Tensor]bool{}} }

// T registers t to be dropped at Close and returns it.
func (s *Scope) T(t *ts.Tensor) *ts.Tensor {
	s.ts = append(s.ts, t)
	return t
}

// Keep marks t to survive Close; the caller now owns it.
func (s *Scope) Keep(t *ts.Tensor) *ts.Tensor {
	s.keep[t] = true
	return t
}

// Close drops every registered tensor not kept. Safe to call twice.
func (s *Scope) Close() {
	for _, t := range s.ts {
		if !s.keep[t] {
			t.MustDrop()
		}
	}
	s.ts = s.ts[:0]
}
