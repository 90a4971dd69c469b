package train

// #cgo LDFLAGS: -ldl
// #define _GNU_SOURCE
// #include <dlfcn.h>
// #include <stdbool.h>
// #include <stdint.h>
//
// extern bool at_autocast_set_enabled(bool b);
// extern int at_autocast_increment_nesting();
// extern int at_autocast_decrement_nesting();
// extern void at_autocast_clear_cache();
//
// // gotch binds autocast on/off but not its dtype, whose CUDA default is
// // fp16. Both libtorch functions that set it take enums of one byte, so
// // they are called through dlsym: set_autocast_dtype(DeviceType, ScalarType)
// // in libtorch >= 2.4, set_autocast_gpu_dtype(ScalarType) before (in 2.4+
// // the latter is an inline wrapper and no longer exported).
// static int set_autocast_cuda_dtype(int8_t dtype) {
//   void (*both)(int8_t, int8_t) = (void (*)(int8_t, int8_t))dlsym(RTLD_DEFAULT,
//       "_ZN2at8autocast17set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE");
//   if (both) { both(1 /* c10::DeviceType::CUDA */, dtype); return 1; }
//   void (*gpu)(int8_t) = (void (*)(int8_t))dlsym(RTLD_DEFAULT,
//       "_ZN2at8autocast22set_autocast_gpu_dtypeEN3c1010ScalarTypeE");
//   if (gpu) { gpu(dtype); return 1; }
//   return 0;
// }
import "C"

import (
	"fmt"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
)

// resolvePrecision turns train.precision into fp32 or bf16 for device.
// Autocast here means CUDA autocast, the only kind gotch binds: on CPU,
// auto is fp32 and asking for bf16 is an error rather than a silent fp32
// run.
func resolvePrecision(p string, dev gotch.Device) (string, error) {
	switch {
	case p == "fp32":
		return "fp32", nil
	case p == "auto" && !dev.IsCuda():
		return "fp32", nil
	case !dev.IsCuda():
		return "", fmt.Errorf("train.precision: %s autocast needs a CUDA device, this run is on %s (use auto or fp32)", p, torchx.DeviceName(dev))
	case p == "auto" || p == "bf16":
		if C.set_autocast_cuda_dtype(C.int8_t(gotch.BFloat16.CInt())) == 0 {
			return "", fmt.Errorf("train.precision: bf16: this libtorch exports no function that sets the autocast dtype")
		}
		return "bf16", nil
	}
	return "", fmt.Errorf("train.precision: %q is not auto, fp32 or bf16", p)
}

// autocast runs fn with CUDA autocast to bf16 on (this thread only), the
// way torch.autocast("cuda", torch.bfloat16) does as a context manager:
// the dtype is set, the nesting counted, and the cache of down-cast weights
// cleared when the outermost region ends so it cannot grow across steps.
func autocast(fn func() error) error {
	C.set_autocast_cuda_dtype(C.int8_t(gotch.BFloat16.CInt()))
	prev := C.at_autocast_set_enabled(true)
	C.at_autocast_increment_nesting()
	defer func() {
		if C.at_autocast_decrement_nesting() == 0 {
			C.at_autocast_clear_cache()
		}
		C.at_autocast_set_enabled(prev)
	}()
	return fn()
}
