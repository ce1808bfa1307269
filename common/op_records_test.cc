// Op records without LibTorch (op_records.h, localize_stages.h): one op's outputs cross
// as bytes and come back exactly, anything else is refused saying what; two dumps'
// differences are counted in the tensors' own units in the last place; and the stages of
// a localization fold both sides' replays into the answer in order.
#include "common/op_records.h"

#include <cmath>
#include <cstring>

#include "common/localize_stages.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro {
namespace {

using ::testing::HasSubstr;

template <typename T>
TensorValues Tensor(const std::string& dtype, std::vector<T> values) {
  TensorValues t;
  t.dtype = dtype;
  t.shape = {static_cast<int64_t>(values.size())};
  t.bytes.resize(values.size() * sizeof(T));
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

OpOutputs Sample() {
  TensorValues undefined;
  undefined.defined = false;
  TensorValues scalar = Tensor<float>("Float", {0.5f});
  scalar.shape = {};
  return OpOutputs{"aten::convolution_backward", "",
                   {Tensor<float>("Float", {1.0f, -2.0f, 3.5f}), undefined,
                    Tensor<int64_t>("Long", {7, -9}), scalar,
                    Tensor<uint16_t>("Half", {0x3c00, 0xc000})}};
}

bool Same(const OpOutputs& a, const OpOutputs& b) {
  if (a.name != b.name || a.overload != b.overload || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorValues &x = a.tensors[i], &y = b.tensors[i];
    if (x.defined != y.defined || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) {
      return false;
    }
  }
  return true;
}

TEST(OpOutputsTest, EncodedOutputsDecodeToThemselves) {
  const OpOutputs sample = Sample();
  auto back = DecodeOpOutputs(EncodeOpOutputs(sample));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(Same(*back, sample));
}

TEST(OpOutputsTest, EveryTruncationAndAnyTrailingByteIsRefused) {
  const std::string bytes = EncodeOpOutputs(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto cut = DecodeOpOutputs(bytes.substr(0, n));
    ASSERT_FALSE(cut.ok()) << n << " bytes of " << bytes.size();
    EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);
  }
  auto longer = DecodeOpOutputs(bytes + "x");
  EXPECT_THAT(std::string(longer.status().message()), HasSubstr("go on past their last tensor"));
}

TEST(OpOutputsTest, BytesThatDoNotFitTheirDtypeAndShapeAreRefused) {
  OpOutputs odd{"aten::mm", "", {Tensor<float>("Float", {1.0f, 2.0f})}};
  odd.tensors[0].shape = {3};
  EXPECT_THAT(std::string(DecodeOpOutputs(EncodeOpOutputs(odd)).status().message()),
              HasSubstr("has 8 bytes for 3 Float values"));
  odd.tensors[0].shape = {2};
  odd.tensors[0].dtype = "Quaternion";
  EXPECT_THAT(std::string(DecodeOpOutputs(EncodeOpOutputs(odd)).status().message()),
              HasSubstr("dtype \"Quaternion\", which repro does not know"));
  odd.tensors[0].dtype = "Float";
  odd.tensors[0].shape = std::vector<int64_t>(65, 1);
  EXPECT_THAT(std::string(DecodeOpOutputs(EncodeOpOutputs(odd)).status().message()),
              HasSubstr("65 dimensions"));
  odd.tensors[0].shape = {int64_t{1} << 40, int64_t{1} << 40};  // would overflow a count
  EXPECT_FALSE(DecodeOpOutputs(EncodeOpOutputs(odd)).ok());
  EXPECT_THAT(std::string(DecodeOpOutputs("not a dump").status().message()),
              HasSubstr("not op outputs"));
}

TEST(OpOutputsTest, DifferencesAreCountedInTheTypesOwnUnitsInTheLastPlace) {
  const float one = 1.0f;
  const OpOutputs a{"aten::mm", "", {Tensor<float>("Float", {one, 0.0f, 5.0f})}};
  const OpOutputs b{"aten::mm", "",
                    {Tensor<float>("Float", {std::nextafter(std::nextafter(one, 2.0f), 2.0f),
                                             -0.0f, 5.0f})}};
  auto d = CompareOpOutputs(a, b);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->elements, 3);
  EXPECT_EQ(d->differing, 2);
  EXPECT_EQ(d->max_ulps, 2u);  // +0 and -0 are 1 apart, 1 and its second successor 2
  EXPECT_DOUBLE_EQ(d->max_abs, std::nextafter(std::nextafter(one, 2.0f), 2.0f) - 1.0);

  // Half: 1.0 (0x3c00) and its successor (0x3c01) are 1 float16 ulp, 2^-10, apart.
  auto h = CompareOpOutputs(OpOutputs{"aten::mm", "", {Tensor<uint16_t>("Half", {0x3c00})}},
                            OpOutputs{"aten::mm", "", {Tensor<uint16_t>("Half", {0x3c01})}});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->max_ulps, 1u);
  EXPECT_DOUBLE_EQ(h->max_abs, std::ldexp(1.0, -10));
  // BFloat16: 1.0 (0x3f80) against 2.0 (0x4000) is 128 bfloat16 ulps.
  auto bf = CompareOpOutputs(OpOutputs{"aten::mm", "", {Tensor<uint16_t>("BFloat16", {0x3f80})}},
                             OpOutputs{"aten::mm", "", {Tensor<uint16_t>("BFloat16", {0x4000})}});
  ASSERT_TRUE(bf.ok());
  EXPECT_EQ(bf->max_ulps, 128u);
  EXPECT_DOUBLE_EQ(bf->max_abs, 1.0);
  // Integers: a difference but no ulps.
  auto i = CompareOpOutputs(OpOutputs{"aten::mm", "", {Tensor<int64_t>("Long", {3, 4})}},
                            OpOutputs{"aten::mm", "", {Tensor<int64_t>("Long", {3, -4})}});
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->differing, 1);
  EXPECT_EQ(i->max_ulps, 0u);
  EXPECT_DOUBLE_EQ(i->max_abs, 8);
}

TEST(OpOutputsTest, DumpsOfDifferentOpsOrShapesAreNotCompared) {
  const OpOutputs a{"aten::mm", "", {Tensor<float>("Float", {1.0f})}};
  EXPECT_THAT(std::string(CompareOpOutputs(a, OpOutputs{"aten::add", "", a.tensors}).status().message()),
              HasSubstr("different ops"));
  EXPECT_THAT(std::string(CompareOpOutputs(a, OpOutputs{"aten::mm", "", {Tensor<float>("Float", {1.0f, 2.0f})}})
                              .status().message()),
              HasSubstr("differs in dtype or shape"));
}

// ---------------------------------------------------------------- the stages

OpRecord Record(const std::string& name, const std::string& in, const std::string& out) {
  return OpRecord{name, "conv1", OpPhase::kBackward, {in}, {TracedValue{out, "Float", {2}}}};
}

TEST(LocalizeStagesTest, EachStageFoldsBothSidesAndNamesTheNext) {
  LocalizationResult r;
  r.epoch = 2;
  EXPECT_EQ(RequestFor(LocalizeStage::kEpoch, r).trace_batch, std::nullopt);
  SideReplay a, b;
  a.batch_hashes = {"h0", "h1", "A"};
  b.batch_hashes = {"h0", "x1", "B"};
  a.seconds = b.seconds = 1;
  a.wall_seconds = b.wall_seconds = 3;
  auto next = FoldStage(LocalizeStage::kEpoch, a, b, "A", "", &r);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, LocalizeStage::kTrace);
  EXPECT_EQ(r.batch, 1);
  EXPECT_EQ(r.a_reproduced, 1);
  EXPECT_EQ(r.b_reproduced, -1);
  EXPECT_EQ(RequestFor(LocalizeStage::kTrace, r).trace_batch, 1);

  a.trace = {Record("aten::relu", "i", "o"), Record("aten::mm", "g", "p")};
  b.trace = {Record("aten::relu", "i", "o"), Record("aten::mm", "g", "q")};
  a.traced_batch_end_hash = "h1";
  b.traced_batch_end_hash = "x1";
  next = FoldStage(LocalizeStage::kTrace, a, b, "A", "", &r);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, LocalizeStage::kDump);
  EXPECT_EQ(r.op_kind, "outputs");
  EXPECT_EQ(r.op_index, 1);
  EXPECT_EQ(r.op_phase, "backward");
  EXPECT_TRUE(r.inputs_equal);
  EXPECT_TRUE(r.trace_changed_nothing);
  const SideRequest dump = RequestFor(LocalizeStage::kDump, r);
  EXPECT_EQ(dump.epoch, 2);
  EXPECT_EQ(dump.trace_batch, 1);
  EXPECT_EQ(dump.dump_op, 1);

  a.dump = OpOutputs{"aten::mm", "", {Tensor<float>("Float", {1.0f})}};
  b.dump = OpOutputs{"aten::mm", "", {Tensor<float>("Float", {std::nextafter(1.0f, 2.0f)})}};
  next = FoldStage(LocalizeStage::kDump, a, b, "A", "", &r);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, LocalizeStage::kDone);
  EXPECT_EQ(r.max_ulps, 1u);
  EXPECT_DOUBLE_EQ(r.seconds, 18);  // three stages, 3 s a side
  EXPECT_FALSE(FoldStage(LocalizeStage::kDone, a, b, "", "", &r).ok());
}

TEST(LocalizeStagesTest, ReplaysThatDoNotPartOrRunOtherOpsEndEarly) {
  SideReplay a, b;
  a.batch_hashes = b.batch_hashes = {"h0", "h1"};
  LocalizationResult r;
  EXPECT_EQ(*FoldStage(LocalizeStage::kEpoch, a, b, "", "", &r), LocalizeStage::kDone);
  EXPECT_EQ(r.batch, -1);
  a.trace = {Record("aten::relu", "i", "o")};
  b.trace = {Record("aten::gelu", "i", "o")};
  EXPECT_EQ(*FoldStage(LocalizeStage::kTrace, a, b, "", "", &r), LocalizeStage::kDone);
  EXPECT_EQ(r.op_kind, "ops");
  EXPECT_EQ(r.op_name_b, "aten::gelu");
  for (LocalizeStage s : {LocalizeStage::kEpoch, LocalizeStage::kTrace, LocalizeStage::kDump,
                          LocalizeStage::kDone}) {
    EXPECT_EQ(StageNamed(StageName(s)), s);
  }
  EXPECT_EQ(StageNamed("later"), std::nullopt);
}

}  // namespace
}  // namespace repro
