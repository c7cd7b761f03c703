// Built and run by CMakeLists.txt before the oneDNN rewrite (native/onednn/onednn_op.h) goes into the
// addon. That rewrite calls two functions internal to LibTorch, declared by onednn/onednn_op.h itself,
// and reads LibTorch's ideep tensors through the ideep headers found on this machine. An addon
// built against the wrong ones would fail only when loaded (an undefined symbol) or, worse, read
// memory laid out differently. So: linking this program proves that both functions exist in
// LibTorch with the signatures onednn/onednn_op.h gives them, and running it proves that an MKLDNN
// tensor LibTorch made reads back through these headers as LibTorch wrote it, and the other way.
#define LTF_WITH_ONEDNN
#include "onednn/onednn_op.h"

#include <cstdio>

int main() {
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // as LibTorch's own MKLDNN operators run
  const at::Tensor dense = at::arange(2 * 3 * 4 * 5, at::kFloat).reshape({2, 3, 4, 5});
  const at::Tensor mkldnn = dense.to_mkldnn();
  const ideep::tensor& inside = at::native::itensor_from_mkldnn(mkldnn);
  if (inside.get_dims() != ideep::tensor::dims({2, 3, 4, 5}) ||
      inside.get_data_type() != ideep::tensor::data_type::f32) {
    std::puts("LibTorch's ideep tensor reads back with other dimensions or type through these ideep headers");
    return 1;
  }
  ideep::tensor plain({2, 3, 4, 5}, ideep::tensor::data_type::f32, ideep::format_tag::nchw);
  inside.reorder_to(plain);
  const float* values = static_cast<const float*>(plain.get_data_handle());
  for (int i = 0; i < 2 * 3 * 4 * 5; ++i) {
    if (values[i] != static_cast<float>(i)) {
      std::puts("LibTorch's ideep tensor holds other values when read through these ideep headers");
      return 1;
    }
  }
  const at::Tensor back = at::native::new_with_itensor_mkldnn(std::move(plain), at::kFloat, dense.device());
  if (!at::equal(back.to_dense(), dense)) {
    std::puts("an ideep tensor made with these headers reads back differently in LibTorch");
    return 1;
  }
  std::puts("ok");
  return 0;
}
