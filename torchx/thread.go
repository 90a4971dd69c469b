package torchx

// #cgo LDFLAGS: -ldl
// #include <dlfcn.h>
// extern int at_grad_set_enabled(int b);
// extern int at_get_num_threads();
//
// // OpenMP's thread count of the calling thread only (libgomp keeps it per
// // thread); looked up by name like OpenBLAS's, 0 when libtorch has no
// // OpenMP.
// static int omp_set_threads_here(int n) {
//	void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
//	if (!f) return 0;
//	f(n);
//	return 1;
// }
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

// LockWorker is Lock for a goroutine that runs one share of a parallel
// piece of work (models' lanes) beside others: gradients on, whatever the
// thread last ran, and this thread's own intra-op parallelism 1, so that n
// such goroutines use n cores instead of asking for n×threads. libtorch's
// count is one per thread under OpenMP (set on a thread's first parallel
// op from the global one, which is why that is triggered first); the
// global count and every other thread keep theirs. It reports false when
// libtorch has no OpenMP and the count stayed. The goroutine must return
// without unlocking: Go then ends the thread, and its count with it.
func LockWorker() bool {
	runtime.LockOSThread()
	setGrad(true)
	C.at_get_num_threads()
	return C.omp_set_threads_here(1) == 1
}

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
