#include "coordinator/token_gate.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace repro {
namespace {

// The standard services any caller may use (README: Security).
constexpr const char* kOpenServices[] = {"/grpc.health.v1.Health/",
                                         "/grpc.reflection.v1alpha.ServerReflection/",
                                         "/grpc.reflection.v1.ServerReflection/"};

grpc::string_ref Ref(const grpc_slice& slice) {
  return grpc::string_ref(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                          GRPC_SLICE_LENGTH(slice));
}

// gRPC core's form of a metadata processor, calling the gate; it answers at once.
void ProcessWithGate(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md,
                     size_t num_md, grpc_process_auth_metadata_done_cb done, void* user_data) {
  const TokenGate& gate = **static_cast<std::shared_ptr<TokenGate>*>(state);
  grpc::AuthMetadataProcessor::InputMetadata metadata;
  for (size_t i = 0; i < num_md; ++i) metadata.emplace(Ref(md[i].key), Ref(md[i].value));
  const grpc::Status s = gate.Check(metadata);
  done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(s.error_code()),
       s.ok() ? nullptr : s.error_message().c_str());
}

void DestroyGate(void* state) { delete static_cast<std::shared_ptr<TokenGate>*>(state); }

// Plain TCP with a gate: what grpc::InsecureServerCredentials() would do, through gRPC
// core, whose insecure credentials take a metadata processor (the C++ class refuses one).
class GatedInsecureCredentials final : public grpc::ServerCredentials {
 public:
  explicit GatedInsecureCredentials(std::shared_ptr<TokenGate> gate) : gate_(std::move(gate)) {}
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_server_credentials* creds = grpc_insecure_server_credentials_create();
    grpc_server_credentials_set_auth_metadata_processor(
        creds, {&ProcessWithGate, &DestroyGate, new std::shared_ptr<TokenGate>(gate_)});
    const int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }

  std::shared_ptr<TokenGate> gate_;
};

}  // namespace

grpc::Status TokenGate::Check(const InputMetadata& metadata) const {
  const auto path_it = metadata.find(":path");
  const std::string path = path_it == metadata.end()
                               ? std::string()
                               : std::string(path_it->second.data(), path_it->second.size());
  for (const char* open : kOpenServices) {
    if (absl::StartsWith(path, open)) return grpc::Status::OK;
  }
  const auto token_it = metadata.find(kAuthMetadataKey);
  const std::string token = token_it == metadata.end()
                                ? std::string()
                                : std::string(token_it->second.data(), token_it->second.size());
  // Either token passes here; a handler checks what it may do (service.h: Authorize).
  grpc::Status s = auth_.CheckHeader(token_it == metadata.end() ? nullptr : &token, Role::kWorker);
  if (!s.ok()) {
    // The path is the caller's word: escaped, it cannot forge or hide a log line.
    const std::string method = absl::CHexEscape(path.substr(path.rfind('/') + 1).substr(0, 100));
    // gRPC gives no peer address at this point: the method is what there is to log.
    log_(absl::StrCat("refused ", method.empty() ? "a call" : method,
                      " from a caller without a valid token, before reading its message: ",
                      s.error_message()));
  }
  return s;
}

grpc::Status TokenGate::Process(const InputMetadata& auth_metadata, grpc::AuthContext*,
                                OutputMetadata*, OutputMetadata*) {
  return Check(auth_metadata);
}

std::shared_ptr<grpc::ServerCredentials> GatedServerCredentials(
    std::shared_ptr<grpc::ServerCredentials> credentials, bool tls,
    std::shared_ptr<TokenGate> gate) {
  if (!tls) return std::make_shared<GatedInsecureCredentials>(std::move(gate));
  credentials->SetAuthMetadataProcessor(std::move(gate));
  return credentials;
}

}  // namespace repro
