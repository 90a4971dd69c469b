package torchx

// extern int at_grad_set_enabled(int b);
import "C"

import "runtime"

// Lock pins the calling goroutine to its OS thread. libtorch keeps grad
// mode and the last error in thread-local storage, and gotch switches grad
// mode and reads errors in separate cgo calls; if the goroutine moved to
// another thread between two such calls, a thread would be left with grad
// mode off (the "element 0 of tensors does not require grad" failure) or an
// error would be read on the wrong thread. Every goroutine that does torch
// work calls Lock first and keeps all its torch work on that goroutine.
func Lock() { runtime.LockOSThread() }

// NoGrad runs fn with gradient recording off and restores the previous
// mode afterwards (gotch's ts.NoGrad always switches it back on, which is
// wrong when nested). The caller must be Locked.
func NoGrad(fn func()) {
	prev := setGrad(false)
	defer setGrad(prev)
	fn()
}

// GradEnabled reports libtorch's grad mode on this thread.
func GradEnabled() bool {
	prev := setGrad(true)
	setGrad(prev)
	return prev
}

// setGrad sets grad mode on this thread and returns the previous mode.
//
// It calls the C binding directly because gotch v0.9.1's
// libtch.AtGradSetEnabled reads the 4-byte C int result through an 8-byte
// Go int pointer: the upper half is stack garbage, and ts.GradSetEnabled
// then reports anything other than exactly 0 or 1 as "was disabled". Code
// that restores the "previous" mode from it (ts.NoGrad1, ts.NoGradGuard, a
// naive NoGrad) leaves grad mode off at random, the intermittent
// "element 0 of tensors does not require grad" failure.
func setGrad(on bool) bool {
	b := C.int(0)
	if on {
		b = 1
	}
	return C.at_grad_set_enabled(b) == 1
}
