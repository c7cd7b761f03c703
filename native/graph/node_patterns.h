// Small questions the graph rewrites ask of a node's values (onednn/onednn_conv.cc,
// graph/pointwise_fusion.cc).
#pragma once

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

namespace ltf {

// Whether `value` is read by exactly one node, that node in *user.
inline bool SingleUse(torch::jit::Value* value, torch::jit::Node** user) {
  if (value->uses().size() != 1) return false;
  *user = value->uses()[0].user;
  return true;
}

// Whether `value` is the constant 1 (int or float): an addition's alpha that changes nothing.
inline bool IsOne(torch::jit::Value* value) {
  auto constant = torch::jit::toIValue(value);
  return constant && ((constant->isInt() && constant->toInt() == 1) ||
                      (constant->isDouble() && constant->toDouble() == 1.0));
}

}  // namespace ltf
