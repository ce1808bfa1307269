// JsonWriter against nlohmann::json: the same document written both ways must be the
// same bytes, and the JSON report (written with JsonWriter) must be exactly what
// nlohmann prints for the document it holds.
#include "analysis/json_writer.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "analysis/analysis.h"
#include "analysis/report.h"
#include "analysis/sample_experiment.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace repro {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

const double kDoubles[] = {0.0,  -0.0,   0.1,   1.0,    -2.5,  1e-5,  1e-4,    123456.0,
                           1e15, 1e16,   1e21,  1.5e300, 5e-324, 0.30000000000000004,
                           std::numeric_limits<double>::max(), 2.0 / 3.0, 1e-7 / 3};
const char* const kStrings[] = {"",           "plain text", "quote \" and \\ backslash",
                                "tab\tnl\ncr\r", "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac",
                                "bad \xff byte", "cut \xe2\x82", "\xc3"};

void WriteBoth(JsonWriter& w, Json& j) {
  w.BeginObject();
  w.Key("doubles");
  w.BeginArray();
  Json doubles = Json::array();
  for (double d : kDoubles) {
    w.Double(d);
    doubles.push_back(d);
  }
  w.Double(std::nan(""));
  doubles.push_back(std::nan(""));
  w.Double(-std::numeric_limits<double>::infinity());
  doubles.push_back(-std::numeric_limits<double>::infinity());
  w.EndArray();
  j["doubles"] = doubles;
  w.Field("min", std::numeric_limits<int64_t>::min());
  j["min"] = std::numeric_limits<int64_t>::min();
  w.Field("max", std::numeric_limits<uint64_t>::max());
  j["max"] = std::numeric_limits<uint64_t>::max();
  w.Field("int", -42);
  j["int"] = -42;
  w.Field("yes", true);
  j["yes"] = true;
  w.NullField("none");
  j["none"] = nullptr;
  w.Field("maybe", std::optional<double>());
  j["maybe"] = nullptr;
  w.Key("strings");
  w.BeginObject();
  Json strings = Json::object();
  for (const char* s : kStrings) {
    w.Field(s, s);
    strings[s] = s;
  }
  w.EndObject();
  j["strings"] = strings;
  w.Key("empty_object");
  w.BeginObject();
  w.EndObject();
  j["empty_object"] = Json::object();
  w.Key("empty_array");
  w.BeginArray();
  w.EndArray();
  j["empty_array"] = Json::array();
  w.Key("nested");
  w.BeginArray();
  w.BeginObject();
  w.Field("a", 1);
  w.Key("b");
  w.BeginArray();
  w.BeginArray();
  w.EndArray();
  w.String("x");
  w.EndArray();
  w.EndObject();
  w.BeginObject();
  w.EndObject();
  w.EndArray();
  j["nested"] = Json::array({Json{{"a", 1}, {"b", Json::array({Json::array(), "x"})}},
                             Json::object()});
  w.EndObject();
}

TEST(JsonWriterTest, WritesWhatNlohmannDumps) {
  for (int indent : {2, 4, -1}) {
    std::string out;
    JsonWriter w(&out, indent);
    Json j = Json::object();
    WriteBoth(w, j);
    EXPECT_EQ(out, Dump(j, indent)) << "indent " << indent;
  }
}

TEST(JsonWriterTest, ATopLevelScalar) {
  std::string out;
  JsonWriter w(&out);
  w.Double(0.1);
  EXPECT_EQ(out, "0.1");
}

// The report's JSON is byte for byte what nlohmann prints for the same document.
TEST(JsonWriterTest, TheReportIsNlohmannsDumpOfItself) {
  ExperimentView view = SampleExperiment();
  ASSERT_FALSE(view.runs.empty());
  // Strings a worker may send, NaN scores and a running run.
  view.runs.back().error = "bad \xff byte, \"quoted\"\n\ttab";
  view.runs.back().result.environment["gpu_name"] = "caf\xc3\xa9";
  view.runs.front().result.epochs.front().loss = std::nan("");
  view.runs[1].state = RunState::kRunning;
  view.runs[1].current_epoch = 0;
  for (const std::string& arm : {std::string(), view.arms.front()}) {
    auto text = RenderReport(Analyze(view), ReportFormat::kJson, arm);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, Dump(Json::parse(*text), 2) + "\n") << "arm filter '" << arm << "'";
  }
}

}  // namespace
}  // namespace repro
