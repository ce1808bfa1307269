// The coordinator's gRPC surface as an ordinary client meets it: the standard health
// service, and the worker service's answers to calls that break the protocol (an
// unregistered worker, a result that does not fit the plan, a lease that does not exist).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "proto/convert.h"
#include "repro/v1/repro.grpc.pb.h"
#include "tests/grpc_health_v1.grpc.pb.h"
#include "tests/process.h"

namespace repro {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override { StartCoordinator({}); }

  // Starts a coordinator on a free loopback port with `extra` flags and connects to it
  // with `credentials` (insecure by default).
  // `plan_tail` ends the plan; `files` (name, bytes) are written beside it first.
  void StartCoordinator(const std::vector<std::string>& extra,
                        std::shared_ptr<grpc::ChannelCredentials> credentials =
                            grpc::InsecureChannelCredentials(),
                        const std::string& target_host = "127.0.0.1",
                        const std::string& plan_tail = "",
                        const std::map<std::string, std::string>& files = {}) {
    std::string pattern = ::testing::TempDir() + "repro_rpc_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    for (const auto& [name, bytes] : files) testing::WriteFile(dir_ + "/" + name, bytes);
    testing::WriteFile(dir_ + "/plan.yaml",
                       "experiment: rpc\nruns: 1\nepochs: 2\n"
                       "dataset: {path: " REPRO_FASHION_MNIST ", train_limit: 100, test_limit: 50}\n" +
                           plan_tail);
    const std::string port_file = dir_ + "/port";
    std::vector<std::string> argv = {REPRO_COORDINATOR_BIN, "--plan", dir_ + "/plan.yaml", "--db",
                                     dir_ + "/rpc.db", "--listen", "127.0.0.1:0", "--port-file",
                                     port_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_EQ(coordinator_.Start(argv, dir_, dir_ + "/c.out", dir_ + "/c.err"), "");
    port_ = testing::WaitForPortFile(coordinator_, port_file);
    ASSERT_GT(port_, 0) << testing::ReadFile(dir_ + "/c.err");
    grpc::ChannelArguments args;
    if (target_host != "127.0.0.1") args.SetSslTargetNameOverride(target_host);
    channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), credentials, args);
    workers_ = v1::WorkerService::NewStub(channel_);
    control_ = v1::ControlService::NewStub(channel_);
  }

  void TearDown() override {
    coordinator_.KillAll();
    std::error_code ignored;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 10s);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  void Register(const std::string& name, const std::string& token = "") {
    v1::RegisterRequest req;
    req.mutable_worker()->set_name(name);
    v1::RegisterResponse resp;
    ASSERT_TRUE(workers_->Register(Ctx(token).get(), req, &resp).ok());
    EXPECT_EQ(resp.experiment(), "rpc");
  }

  v1::RunAssignment LeaseOne(const std::string& worker, const std::string& token = "") {
    v1::LeaseRequest req;
    req.set_worker(worker);
    v1::LeaseResponse resp;
    grpc::Status s = workers_->Lease(Ctx(token).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.has_run());
    return resp.run();
  }

  std::string dir_;
  ChildProcess coordinator_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

TEST_F(RpcTest, HealthServiceSaysServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "repro.v1.WorkerService", "repro.v1.ControlService"}) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(RpcTest, AnUnregisteredWorkerCannotLease) {
  v1::LeaseRequest req;
  req.set_worker("stranger");
  v1::LeaseResponse resp;
  grpc::Status s = workers_->Lease(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "not registered")) << s.error_message();
}

TEST_F(RpcTest, AResultThatDoesNotFitThePlanIsRefusedAndNothingIsCounted) {
  Register("w");
  v1::LeaseRequest lease_req;
  lease_req.set_worker("w");
  v1::LeaseResponse lease;
  ASSERT_TRUE(workers_->Lease(Ctx().get(), lease_req, &lease).ok());
  ASSERT_TRUE(lease.has_run());
  EXPECT_EQ(lease.run().spec().epochs(), 2);
  EXPECT_EQ(lease.run().spec().train_limit(), 100);

  v1::CompleteRequest req;
  req.set_worker("w");
  req.set_run_id(lease.run().run_id());
  req.set_lease_id(lease.run().lease_id());
  req.set_lease_secret(lease.run().lease_secret());
  req.mutable_result()->add_epochs();  // one epoch where the plan has two
  v1::CompleteResponse resp;
  grpc::Status s = workers_->Complete(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "has 1 epochs, the plan has 2"))
      << s.error_message();

  // A lease that was never handed out is refused too.
  req.set_lease_id(lease.run().lease_id() + 1000);
  auto* r = req.mutable_result();
  r->clear_epochs();
  for (int e = 0; e < 2; ++e) r->add_epochs()->set_epoch(e);
  const std::string hash(32, 'a');
  r->set_initial_hash(hash);
  r->set_final_hash(hash);
  r->set_data_x_hash(hash);
  r->set_data_y_hash(hash);
  auto* t = r->add_initial_tensors();
  t->set_name("w");
  t->set_hash(hash);
  *r->add_final_tensors() = *t;
  s = workers_->Complete(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  // Heartbeats on the real lease still keep it; the run is still running, not done.
  v1::HeartbeatRequest hb;
  hb.set_worker("w");
  hb.set_run_id(lease.run().run_id());
  hb.set_lease_id(lease.run().lease_id());
  hb.set_lease_secret(lease.run().lease_secret());
  v1::HeartbeatResponse hb_resp;
  ASSERT_TRUE(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).ok());
  EXPECT_TRUE(hb_resp.lease_valid());
  hb.set_epoch(7);  // outside the plan's two epochs
  EXPECT_EQ(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RpcTest, AWorkerMayNotReportForAnotherWorkersLease) {
  Register("owner");
  Register("intruder");
  const v1::RunAssignment run = LeaseOne("owner");
  v1::HeartbeatRequest hb;
  hb.set_worker("intruder");
  hb.set_run_id(run.run_id());
  hb.set_lease_id(run.lease_id());
  hb.set_lease_secret(run.lease_secret());  // even with the secret, the name must match
  v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::FailRequest fail;
  fail.set_worker("intruder");
  fail.set_run_id(run.run_id());
  fail.set_lease_id(run.lease_id());
  fail.set_error("sabotage");
  v1::FailResponse fail_resp;
  grpc::Status s = workers_->Fail(Ctx().get(), fail, &fail_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "belongs to another worker")) << s.error_message();
  // The owner's lease is untouched.
  hb.set_worker("owner");
  ASSERT_TRUE(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).ok());
  EXPECT_TRUE(hb_resp.lease_valid());
}

TEST(ListenTest, AnAddressOtherMachinesCanReachNeedsAToken) {
  const std::string dir = ::testing::TempDir();
  testing::WriteFile(dir + "/open.yaml", "experiment: open\nruns: 1\nepochs: 1\n"
                     "dataset: {path: " REPRO_FASHION_MNIST ", train_limit: 100, test_limit: 50}\n");
  testing::CommandResult r = testing::RunCommand(
      {REPRO_COORDINATOR_BIN, "--plan", dir + "/open.yaml", "--db", dir + "/open.db", "--listen",
       "0.0.0.0:0"},
      dir, 30s);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "reachable from other machines")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/open.db"));
}

// ------------------------------------------------------------------ tokens

class TokenTest : public RpcTest {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "repro_tokens_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    secrets_ = pattern;
    testing::WriteFile(secrets_ + "/admin", "admin-secret-1234\n");
    testing::WriteFile(secrets_ + "/worker", "worker-secret-5678\n");
    StartCoordinator({"--token-file", secrets_ + "/admin", "--worker-token-file", secrets_ + "/worker"});
  }
  void TearDown() override {
    RpcTest::TearDown();
    std::error_code ignored;
    std::filesystem::remove_all(secrets_, ignored);
  }
  grpc::StatusCode StatusCall(const std::string& token) {
    v1::StatusResponse resp;
    return control_->Status(Ctx(token).get(), v1::StatusRequest(), &resp).error_code();
  }
  std::string secrets_;
};

TEST_F(TokenTest, CallsWithoutTheRightTokenAreRefusedAndLoggedWithoutIt) {
  EXPECT_EQ(StatusCall(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(StatusCall("admin-secret-123"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(StatusCall("admin-secret-1234"), grpc::StatusCode::OK);
  v1::RegisterRequest req;
  req.mutable_worker()->set_name("w");
  v1::RegisterResponse resp;
  EXPECT_EQ(workers_->Register(Ctx("").get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(workers_->Register(Ctx("wrong").get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(workers_->Register(Ctx("worker-secret-5678").get(), req, &resp).ok());
  EXPECT_TRUE(workers_->Register(Ctx("admin-secret-1234").get(), req, &resp).ok());
  const std::string log = testing::ReadFile(dir_ + "/c.err");
  EXPECT_TRUE(absl::StrContains(log, "refused Status from")) << log;
  EXPECT_FALSE(absl::StrContains(log, "secret")) << "a token reached the log:\n" << log;
}

// GetBlob, a streaming call, is held to the token and the worker's registration like
// every other worker call, before any name in it reaches the blob store.
TEST_F(TokenTest, BlobsGoOnlyToRegisteredWorkersWithTheToken) {
  v1::GetBlobRequest req;
  req.set_worker("w");
  req.set_sha256(std::string(64, 'a'));
  const auto code = [&](const std::string& token) {
    auto ctx = Ctx(token);
    auto reader = workers_->GetBlob(ctx.get(), req);
    v1::BlobChunk chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish().error_code();
  };
  EXPECT_EQ(code(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code("wrong"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code("worker-secret-5678"), grpc::StatusCode::FAILED_PRECONDITION);  // not registered
  v1::RegisterRequest reg;
  reg.mutable_worker()->set_name("w");
  v1::RegisterResponse reg_resp;
  ASSERT_TRUE(workers_->Register(Ctx("worker-secret-5678").get(), reg, &reg_resp).ok());
  EXPECT_EQ(code("worker-secret-5678"), grpc::StatusCode::NOT_FOUND);  // not one of the plan's
  req.set_sha256("../../etc/passwd");
  EXPECT_EQ(code("worker-secret-5678"), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(TokenTest, AWorkerTokenCannotMakeAdminCalls) {
  EXPECT_EQ(StatusCall("worker-secret-5678"), grpc::StatusCode::PERMISSION_DENIED);
  v1::CancelRequest req;
  v1::CancelResponse resp;
  EXPECT_EQ(control_->Cancel(Ctx("worker-secret-5678").get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::ReportRequest report;
  report.set_partial(true);
  v1::ReportResponse report_resp;
  EXPECT_EQ(control_->Report(Ctx("worker-secret-5678").get(), report, &report_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(TokenTest, APresentedTokenIsTrimmedAsALoadedOneAndBlanksAreNone) {
  // The coordinator's token came from a file ending in a newline; blanks around the
  // presented one are no part of it either ("Bearer " + token is what is sent).
  EXPECT_EQ(StatusCall(" admin-secret-1234 "), grpc::StatusCode::OK);
  EXPECT_EQ(StatusCall("      "), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TokenTest, HealthNeedsNoToken) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

// What reproctl or a worker (`binary`, with `args`) does with REPRO_TOKEN set to `token`
// (ChildProcess clears it from the tests' environment).
testing::CommandResult WithToken(const std::string& token, std::vector<std::string> argv,
                                 const std::string& dir, std::chrono::seconds timeout = 30s) {
  argv.insert(argv.begin(), {"/usr/bin/env", "REPRO_TOKEN=" + token});
  return testing::RunCommand(argv, dir, timeout);
}

// A fresh folder holding plan.yaml, one small run per arm of `experiment`, for a test
// that starts no fixture's coordinator; "" when it cannot be made.
std::string FolderWithPlan(const std::string& experiment) {
  std::string pattern = ::testing::TempDir() + "repro_tokens_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return "";
  testing::WriteFile(pattern + "/plan.yaml",
                     absl::StrCat("experiment: ", experiment, "\nruns: 1\nepochs: 1\ndataset: {path: "
                                  REPRO_FASHION_MNIST ", train_limit: 100, test_limit: 50}\n"));
  return pattern;
}

TEST(TokenLoadTest, ABlankOrShortTokenIsRefusedWhereItIsLoaded) {
  const std::string dir = FolderWithPlan("tokens");
  ASSERT_FALSE(dir.empty());
  // Blanks once passed for a token: other machines could then lease runs with
  // "Bearer" and blanks.
  testing::CommandResult blank = WithToken(
      "      ", {REPRO_COORDINATOR_BIN, "--plan", dir + "/plan.yaml", "--db", dir + "/tokens.db",
               "--listen", "0.0.0.0:0"}, dir);
  EXPECT_EQ(blank.code, 2) << blank.err;
  EXPECT_TRUE(absl::StrContains(blank.err, "$REPRO_TOKEN: the token is empty or only blanks"))
      << blank.err;
  const std::string file = dir + "/short.token";
  testing::WriteFile(file, "0123456789\n");
  const std::string too_short =
      file + ": the token has 10 characters; a token needs at least 16";
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{REPRO_COORDINATOR_BIN, "--plan", dir + "/plan.yaml", "--db",
                                 dir + "/tokens.db", "--token-file", file},
        std::vector<std::string>{REPRO_WORKER_BIN, "--coordinator", "127.0.0.1:1", "--token-file", file},
        std::vector<std::string>{REPRO_REPROCTL_BIN, "--coordinator", "127.0.0.1:1", "--token-file",
                                 file, "status"}}) {
    testing::CommandResult r = testing::RunCommand(argv, dir, 30s);
    EXPECT_EQ(r.code, 2) << argv[0] << ": " << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, too_short)) << argv[0] << ": " << r.err;
  }
  testing::CommandResult env = WithToken("0123456789", {REPRO_REPROCTL_BIN, "--coordinator",
                                                        "127.0.0.1:1", "status"}, dir);
  EXPECT_EQ(env.code, 2) << env.err;
  EXPECT_TRUE(absl::StrContains(env.err, "$REPRO_TOKEN: the token has 10 characters")) << env.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/tokens.db"));
  std::error_code ignored;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir, ignored);
}

TEST(TokenLoadTest, ATokenEndingInANewlineLetsTheLocalWorkersIn) {
  const std::string dir = FolderWithPlan("newline");
  ASSERT_FALSE(dir.empty());
  // As a token kept in a file reaches the environment (an env file, a Kubernetes Secret).
  testing::CommandResult r = WithToken(
      "a-token-for-the-workers\n",
      {REPRO_COORDINATOR_BIN, "--plan", dir + "/plan.yaml", "--db", dir + "/newline.db",
       "--listen", "127.0.0.1:0", "--local-workers", "1", "--exit-when-done"},
      dir, 90s);
  EXPECT_FALSE(r.timed_out) << "the local worker never got in:\n" << r.err;
  EXPECT_EQ(r.code, 0) << r.err;
  std::error_code ignored;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir, ignored);
}

// ------------------------------------------------------------------ TLS

// Certificates made by the test with openssl: a CA, a server certificate for
// "repro.test" and 127.0.0.1, and two client certificates (CN repro-worker; CN
// peer-worker with the DNS name gpu-7.repro.test), all signed by the CA.
class TlsTest : public RpcTest {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "repro_tls_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    pki_ = pattern;
    const std::string script = absl::StrCat(
        "set -e; cd ", pki_, "; exec 2>openssl.log;"
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=repro-test-ca;"
        "printf 'subjectAltName=DNS:repro.test,IP:127.0.0.1' > san.ext;"
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=repro.test;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext;"
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=repro-worker;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2;"
        "printf 'subjectAltName=DNS:gpu-7.repro.test' > peer.ext;"
        "openssl req -newkey rsa:2048 -nodes -keyout peer.key -out peer.csr -subj /CN=peer-worker;"
        "openssl x509 -req -in peer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out peer.pem -days 2 -extfile peer.ext;"
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other-ca;");
    if (std::system(("bash -c '" + script + "'").c_str()) != 0) {
      GTEST_SKIP() << "openssl could not make test certificates: "
                   << testing::ReadFile(pki_ + "/openssl.log");
    }
  }
  void TearDown() override {
    RpcTest::TearDown();
    std::error_code ignored;
    std::filesystem::remove_all(pki_, ignored);
  }
  // With a certificate: `certificate`.pem ("client", "peer", "server") and its key.
  std::shared_ptr<grpc::ChannelCredentials> Client(bool with_certificate,
                                                   const std::string& certificate = "client") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = testing::ReadFile(pki_ + "/ca.pem");
    if (with_certificate) {
      options.pem_cert_chain = testing::ReadFile(pki_ + "/" + certificate + ".pem");
      options.pem_private_key = testing::ReadFile(pki_ + "/" + certificate + ".key");
    }
    return grpc::SslCredentials(options);
  }
  // A worker stub on a new channel to the coordinator started, with `credentials`.
  std::unique_ptr<v1::WorkerService::Stub> WorkersWith(
      std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("repro.test");
    return v1::WorkerService::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), credentials, args));
  }
  grpc::StatusCode RegisterAs(v1::WorkerService::Stub& stub, const std::string& name) {
    v1::RegisterRequest req;
    req.mutable_worker()->set_name(name);
    v1::RegisterResponse resp;
    return stub.Register(Ctx().get(), req, &resp).error_code();
  }
  bool Healthy() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    auto ctx = Ctx();
    ctx->set_deadline(std::chrono::system_clock::now() + 5s);
    return health->Check(ctx.get(), req, &resp).ok();
  }
  // `binary` (reproctl or the worker) with `flags`, dialling the coordinator started.
  testing::CommandResult RunClient(const char* binary, std::vector<std::string> flags) {
    std::vector<std::string> argv = {binary, "--coordinator", absl::StrCat("127.0.0.1:", port_)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return testing::RunCommand(argv, dir_, 60s);
  }
  testing::CommandResult Reproctl(std::vector<std::string> flags) {
    flags.push_back("status");
    return RunClient(REPRO_REPROCTL_BIN, std::move(flags));
  }
  std::string pki_;
};

TEST_F(TlsTest, ServerTlsRoundTrip) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key"},
                   Client(false), "repro.test");
  EXPECT_TRUE(Healthy());
  Register("w");
}

TEST_F(TlsTest, PlainTextIsRefusedByATlsServer) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key"},
                   grpc::InsecureChannelCredentials());
  EXPECT_FALSE(Healthy());
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key",
                    "--tls-ca", pki_ + "/ca.pem"},
                   Client(true), "repro.test");
  EXPECT_TRUE(Healthy());
  Register("repro-worker");  // its certificate's CN
  // The same server, a client without a certificate.
  channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), Client(false), [] {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("repro.test");
    return args;
  }());
  EXPECT_FALSE(Healthy());
}

// With mutual TLS a worker is the name its certificate gives it (CN or DNS name), or
// one of that name's slots (NAME:k): a worker with the worker token and its own certificate cannot register, lease or report
// under another worker's name, even with that worker's lease secret.
TEST_F(TlsTest, WithMutualTlsAWorkerIsTheNameItsCertificateGives) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key",
                    "--tls-ca", pki_ + "/ca.pem"},
                   Client(true), "repro.test");
  EXPECT_EQ(RegisterAs(*workers_, "gpu-7.repro.test"), grpc::StatusCode::PERMISSION_DENIED);
  Register("repro-worker");
  const v1::RunAssignment run = LeaseOne("repro-worker");

  auto peer = WorkersWith(Client(true, "peer"));
  EXPECT_EQ(RegisterAs(*peer, "repro-worker"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(RegisterAs(*peer, "peer-worker"), grpc::StatusCode::OK);
  EXPECT_EQ(RegisterAs(*peer, "gpu-7.repro.test"), grpc::StatusCode::OK);  // its DNS name
  // Its slots (worker --slots) are its own; another's slots and look-alikes are not.
  EXPECT_EQ(RegisterAs(*peer, "peer-worker:2"), grpc::StatusCode::OK);
  EXPECT_EQ(RegisterAs(*peer, "repro-worker:2"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(RegisterAs(*peer, "peer-worker:2x"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(RegisterAs(*peer, "peer-worker:"), grpc::StatusCode::PERMISSION_DENIED);
  v1::LeaseRequest lease;
  lease.set_worker("repro-worker");
  v1::LeaseResponse lease_resp;
  EXPECT_EQ(peer->Lease(Ctx().get(), lease, &lease_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const auto hb = AboutLease<v1::HeartbeatRequest>("repro-worker", run);  // secret and all
  v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(peer->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // The real worker's lease is untouched, and the refusals are logged.
  ASSERT_TRUE(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).ok());
  EXPECT_TRUE(hb_resp.lease_valid());
  const std::string log = testing::ReadFile(dir_ + "/c.err");
  EXPECT_TRUE(absl::StrContains(log, "refused Register from")) << log;

  // The coordinator's own certificate, which its local workers present: any name.
  EXPECT_EQ(RegisterAs(*WorkersWith(Client(true, "server")), "local-1-0"), grpc::StatusCode::OK);
}

// The calls that carry files, over mutual TLS: a plan's model goes to the worker whose
// certificate names it, and weights come back only from the worker that holds the lease.
TEST_F(TlsTest, WithMutualTlsBlobsGoToAndComeFromTheWorkerTheCertificateNames) {
  std::string model(300000, '\0');
  for (size_t i = 0; i < model.size(); ++i) model[i] = static_cast<char>(i * 31 + 7);
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key",
                    "--tls-ca", pki_ + "/ca.pem"},
                   Client(true), "repro.test",
                   "model: {kind: torchscript, path: model.pt}\nexports: {weights: [final]}\n",
                   {{"model.pt", model}});
  Register("repro-worker");
  const v1::RunAssignment run = LeaseOne("repro-worker");
  const std::string sha = Sha256Hex(model.data(), model.size());
  const auto fetch = [&](v1::WorkerService::Stub& stub, std::string* bytes) {
    v1::GetBlobRequest req;
    req.set_worker("repro-worker");
    req.set_sha256(sha);
    auto ctx = Ctx();
    auto reader = stub.GetBlob(ctx.get(), req);
    v1::BlobChunk chunk;
    while (reader->Read(&chunk)) *bytes += chunk.data();
    return reader->Finish().error_code();
  };
  const auto upload = [&](v1::WorkerService::Stub& stub) {
    v1::PutBlobResponse resp;
    auto ctx = Ctx();
    auto writer = stub.PutBlob(ctx.get(), &resp);
    auto req = AboutLease<v1::PutBlobRequest>("repro-worker", run);
    const std::string weights = "final weights";
    req.set_sha256(Sha256Hex(weights.data(), weights.size()));
    req.set_size(static_cast<int64_t>(weights.size()));
    req.set_data(weights);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish().error_code();
  };
  auto peer = WorkersWith(Client(true, "peer"));
  std::string stolen;
  EXPECT_EQ(fetch(*peer, &stolen), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(stolen.empty());
  EXPECT_EQ(upload(*peer), grpc::StatusCode::PERMISSION_DENIED);
  std::string fetched;
  EXPECT_EQ(fetch(*workers_, &fetched), grpc::StatusCode::OK);
  EXPECT_TRUE(fetched == model) << fetched.size() << " bytes";
  EXPECT_EQ(upload(*workers_), grpc::StatusCode::OK);
  const std::string log = testing::ReadFile(dir_ + "/c.err");
  EXPECT_TRUE(absl::StrContains(log, "refused GetBlob from")) << log;
  EXPECT_TRUE(absl::StrContains(log, "refused PutBlob from")) << log;
}

// A TLS mistake is named, not reported as a coordinator that is away.
TEST_F(TlsTest, ReproctlNamesTheTlsMistake) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key"},
                   Client(false), "repro.test");
  testing::CommandResult plain = Reproctl({});
  EXPECT_EQ(plain.code, 1) << plain.err;
  EXPECT_TRUE(absl::StrContains(plain.err, "closed the connection unanswered, as a TLS server "
                                           "does to a plaintext client: give --tls-ca"))
      << plain.err;
  testing::CommandResult other_ca = Reproctl({"--tls-ca", pki_ + "/other.pem"});
  EXPECT_EQ(other_ca.code, 1) << other_ca.err;
  EXPECT_TRUE(absl::StrContains(other_ca.err, "is not trusted: the CA in --tls-ca " + pki_ +
                                                  "/other.pem did not sign it"))
      << other_ca.err;
  testing::CommandResult right = Reproctl({"--tls-ca", pki_ + "/ca.pem"});
  EXPECT_EQ(right.code, 0) << right.err;
}

TEST_F(TlsTest, ReproctlSaysWhenTheCoordinatorServesNoTls) {
  StartCoordinator({});
  testing::CommandResult r = Reproctl({"--tls-ca", pki_ + "/ca.pem"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "does not serve TLS")) << r.err;
}

TEST_F(TlsTest, ReproctlSaysWhenMutualTlsWantsItsCertificate) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key",
                    "--tls-ca", pki_ + "/ca.pem"},
                   Client(true), "repro.test");
  testing::CommandResult r = Reproctl({"--tls-ca", pki_ + "/ca.pem"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "requires a client certificate (mutual TLS): give "
                                       "--tls-cert and --tls-key"))
      << r.err;
}

TEST_F(TlsTest, AWorkerWithTheWrongCaExitsSayingWhy) {
  StartCoordinator({"--tls-cert", pki_ + "/server.pem", "--tls-key", pki_ + "/server.key"},
                   Client(false), "repro.test");
  testing::CommandResult r = RunClient(REPRO_WORKER_BIN, {"--tls-ca", pki_ + "/other.pem"});
  EXPECT_FALSE(r.timed_out) << "the worker kept retrying:\n" << r.err;
  EXPECT_EQ(r.code, 4) << r.err;  // cli::kExitCannotWork: no restart helps
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("exiting with an error: the certificate of "
                                                    "the coordinator at 127.0.0.1:", port_,
                                                    " is not trusted")))
      << r.err;
}

}  // namespace
}  // namespace repro
