// detr_predict --serve's protocol (src/predict_server.h): answers, echoed ids, and bad requests that
// get one-line errors without ending the server.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "src/checkpoint.h"
#include "src/predict_server.h"
#include "util/base64.h"
#include "tests/fixtures.h"
#include "tests/support.h"
#include "tests/tiny_model.h"

namespace {

detr::Predictor tiny_predictor() {
  const auto dir = detr::testing::scratch_dir("detr_serve_", "model");
  torch::manual_seed(0);
  auto config = detr::testing::tiny_train_config();
  auto model = detr::models::build_model(config);
  detr::CheckpointState state;
  state.classes = {{1, "rocket"}, {2, "car"}, {3, "cat"}, {4, "dog"}};
  detr::save_model(dir / "best.pth", *model, config, state, nlohmann::json::object());
  return detr::load_predictor(dir / "best.pth", torch::kCPU);
}

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(PredictServer, AnswersEachLineAndSurvivesBadRequests) {
  auto predictor = tiny_predictor();
  const auto photo = detr::testing::data_dir() / "photos" / "rocket.jpg";
  const auto b64 = detr::util::base64_encode(file_bytes(photo));
  std::stringstream in;
  in << nlohmann::json{{"id", "a"}, {"image", b64}, {"threshold", 0.0}, {"topk", 3}}.dump() << "\n"
     << "\n"  // blank: ignored
     << nlohmann::json{{"id", 2}, {"path", photo.string()}, {"threshold", 0.0}, {"topk", 3}}.dump() << "\n"
     << "not json\n"
     << nlohmann::json{{"id", 4}, {"image", "%%%"}}.dump() << "\n"
     << nlohmann::json{{"id", 5}, {"image", b64}, {"path", "x"}}.dump() << "\n"
     << nlohmann::json{{"id", 6}, {"image", b64}, {"threshold", 2}}.dump() << "\n"
     << nlohmann::json{{"id", 7}, {"image", detr::util::base64_encode("GIF89a not really")}}.dump() << "\n"
     << std::string(300, 'x') << "\n";
  std::stringstream out;
  detr::ServeOptions o;
  o.max_request_bytes = 200 * 1024;
  const auto n = detr::serve(predictor, in, out, o);
  std::vector<nlohmann::json> answers;
  for (std::string line; std::getline(out, line);) answers.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(n, 8);
  ASSERT_EQ(answers.size(), 8u);
  EXPECT_EQ(answers[0]["id"], "a");
  EXPECT_EQ(answers[0]["detections"].size(), 3u);
  const auto& first = answers[0].at("detections").at(0);
  const std::vector<std::string> names{"", "rocket", "car", "cat", "dog"};
  EXPECT_EQ(first.at("category_name"), names.at(first.at("category_id").get<size_t>())) << answers[0];
  EXPECT_EQ(answers[1]["id"], 2);
  EXPECT_EQ(answers[1]["detections"], answers[0]["detections"]) << "base64 and path give the same image";
  EXPECT_GT(answers[0]["width"].get<int>(), 0);
  for (size_t k = 2; k < answers.size(); ++k) {
    ASSERT_TRUE(answers[k].contains("error")) << answers[k];
    EXPECT_EQ(answers[k]["error"].get<std::string>().find('\n'), std::string::npos);
    std::printf("bad request %zu: %s\n", k, answers[k]["error"].get<std::string>().c_str());
  }
  EXPECT_NE(answers[3]["error"].get<std::string>().find("base64"), std::string::npos);
  EXPECT_NE(answers[5]["error"].get<std::string>().find("threshold"), std::string::npos);
  EXPECT_EQ(answers[5]["id"], 6);
  // A line past the limit is refused without reading it into memory whole.
  std::stringstream big_in;
  big_in << std::string(4096, 'x') << "\n";
  std::stringstream big_out;
  o.max_request_bytes = 100;
  EXPECT_EQ(detr::serve(predictor, big_in, big_out, o), 1);
  EXPECT_NE(big_out.str().find("longer than 100 bytes"), std::string::npos) << big_out.str();
}

TEST(PredictServer, DeepRequestsAndDevicePathsGetOneErrorAndTheServerGoesOn) {
  // Measured before: an id nested 100,000 levels deep killed the server (SIGSEGV); {"path": "/dev/zero"}
  // read until std::bad_alloc.
  auto predictor = tiny_predictor();
  const auto photo = detr::testing::data_dir() / "photos" / "rocket.jpg";
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::stringstream in;
  in << "{\"id\": " << deep << ", \"path\": \"" << photo.string() << "\"}\n"
     << "{\"id\": 2, \"image\": " << deep << "}\n"
     << nlohmann::json{{"id", 3}, {"path", "/dev/zero"}}.dump() << "\n"
     << nlohmann::json{{"id", 4}, {"path", photo.string()}, {"threshold", 0.0}, {"topk", 2}}.dump() << "\n";
  std::stringstream out;
  detr::ServeOptions o;
  o.max_request_bytes = 1 << 20;
  ASSERT_EQ(detr::serve(predictor, in, out, o), 4);
  std::vector<nlohmann::json> answers;
  for (std::string line; std::getline(out, line);) answers.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(answers.size(), 4u);
  for (int i = 0; i < 2; ++i) {
    std::cout << "  answer " << i << ": " << answers[i].dump() << "\n";
    EXPECT_NE(answers[i].value("error", "").find("nests deeper than 64 levels"), std::string::npos) << answers[i];
  }
  std::cout << "  answer 2: " << answers[2].dump() << "\n";
  EXPECT_EQ(answers[2]["id"], 3);
  EXPECT_NE(answers[2].value("error", "").find("/dev/zero: not a regular file"), std::string::npos) << answers[2];
  EXPECT_EQ(answers[3]["id"], 4);  // the server carried on
  EXPECT_EQ(answers[3]["detections"].size(), 2u);
}

// Requests read together: one forward per fed size (at most max_batch images), answers in request
// order, each equal to the request's answer alone up to float32 rounding.
TEST(PredictServer, RequestsThatArriveTogetherShareAForwardAndKeepTheirOwnAnswers) {
  auto predictor = tiny_predictor();
  const auto rocket = detr::testing::data_dir() / "photos" / "rocket.jpg";
  const auto cat = detr::testing::data_dir() / "photos" / "chelsea.jpg";
  const auto request = [](int id, const std::filesystem::path& p, int topk) {
    return nlohmann::json{{"id", id}, {"path", p.string()}, {"threshold", 0.0}, {"topk", topk}}.dump();
  };
  const std::vector<std::string> lines{request(0, rocket, 5), request(1, rocket, 2), "not json", request(3, cat, 5), "",
                                       request(5, rocket, 5)};
  const std::vector<bool> too_long(lines.size(), false);
  detr::ServeOptions o;
  std::vector<nlohmann::json> alone;
  for (const auto& line : lines)
    if (!line.empty()) alone.push_back(nlohmann::json::parse(detr::answer_request(predictor, line, o)));
  for (const auto& [max_batch, expected_forwards] : std::vector<std::pair<int64_t, int64_t>>{{8, 2}, {2, 3}, {1, 4}}) {
    o.max_batch = max_batch;
    int64_t forwards = 0;
    const auto answers = detr::answer_requests(predictor, lines, too_long, o, &forwards);
    EXPECT_EQ(forwards, expected_forwards) << "max_batch " << max_batch;
    ASSERT_EQ(answers.size(), alone.size()) << "the blank line gets no answer";
    double worst = 0;
    for (size_t i = 0; i < answers.size(); ++i) {
      const auto a = nlohmann::json::parse(answers[i]);
      EXPECT_EQ(a["id"], alone[i]["id"]);
      if (alone[i].contains("error")) {
        EXPECT_EQ(a, alone[i]);
        continue;
      }
      ASSERT_EQ(a["detections"].size(), alone[i]["detections"].size()) << a;
      for (size_t d = 0; d < a["detections"].size(); ++d) {
        const auto &x = a["detections"][d], &y = alone[i]["detections"][d];
        EXPECT_EQ(x["category_id"], y["category_id"]);
        worst = std::max(worst, std::abs(x["score"].get<double>() - y["score"].get<double>()));
        for (int k = 0; k < 4; ++k)
          worst = std::max(worst, std::abs(x["bbox"][k].get<double>() - y["bbox"][k].get<double>()) / 100);
      }
    }
    std::printf("max_batch %ld: %ld forwards, largest deviation from one request alone %.3g (scores; boxes / 100 px)\n",
                static_cast<long>(max_batch), static_cast<long>(forwards), worst);
    EXPECT_LT(worst, 1e-4);
  }
  // serve() reads ahead on its own thread; its answers are the same, in order.
  std::stringstream in, out;
  for (const auto& line : lines) in << line << "\n";
  o.max_batch = 4;
  int64_t forwards = 0;
  ASSERT_EQ(detr::serve(predictor, in, out, o, &forwards), static_cast<int64_t>(alone.size()));
  EXPECT_GE(forwards, 2);
  EXPECT_LE(forwards, 4);
  size_t i = 0;
  for (std::string line; std::getline(out, line); ++i) EXPECT_EQ(nlohmann::json::parse(line)["id"], alone.at(i)["id"]);
}

TEST(PredictServer, Base64RoundTripsAndRefusesForeignText) {
  for (const std::string& s :
       std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)})
    EXPECT_EQ(detr::util::base64_decode(detr::util::base64_encode(s)), s);
  EXPECT_EQ(detr::util::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(detr::util::base64_decode("Zm9v\nYmE="), "fooba");
  EXPECT_FALSE(detr::util::base64_decode("Zm9v!").has_value());
  EXPECT_FALSE(detr::util::base64_decode("Zm9=v").has_value());
  EXPECT_FALSE(detr::util::base64_decode("Z").has_value());
}

}  // namespace
