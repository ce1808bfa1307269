// TokenGate: refuses a call without a valid token as soon as its headers arrive, before
// gRPC reads its message. A handler sees a call only once its whole message is in
// memory (up to the 64 MiB a checkpoint may need), so eight unauthenticated 60 MiB calls
// once took the coordinator to 427 MB before any token was looked at. The gate runs on
// the call's metadata, in gRPC's authentication step, for plain TCP and TLS alike
// (GatedServerCredentials), and answers UNAUTHENTICATED; the message is never read.
//
// It checks only that the call carries the admin or the worker token: what each may do
// (a worker token on an admin call, the name a client certificate binds) is still the
// handlers' check (service.h: Authorize). Calls to the standard health service and to
// server reflection need no token (README: Security).
//
// Thread safety: thread-safe; Check is called on gRPC's threads concurrently.
#ifndef REPRO_COORDINATOR_TOKEN_GATE_H_
#define REPRO_COORDINATOR_TOKEN_GATE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <functional>
#include <memory>
#include <string>

#include "common/security.h"

namespace repro {

class TokenGate final : public grpc::AuthMetadataProcessor {
 public:
  using Log = std::function<void(const std::string&)>;
  // Calls pass with a token `auth` knows (every call, when it has none configured).
  TokenGate(Authenticator auth, Log log) : auth_(std::move(auth)), log_(std::move(log)) {}

  // OK when `metadata` (a call's headers, with its ":path") carries a configured token or
  // names a method that needs none; UNAUTHENTICATED otherwise, logged without the token.
  grpc::Status Check(const InputMetadata& metadata) const;

  bool IsBlocking() const override { return false; }  // a few comparisons: run inline
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const Authenticator auth_;
  const Log log_;
};

// `credentials` (TLS when `tls`, else plain TCP: grpc::InsecureServerCredentials() cannot
// take a gate) with `gate` checking every call's token before its message is read.
std::shared_ptr<grpc::ServerCredentials> GatedServerCredentials(
    std::shared_ptr<grpc::ServerCredentials> credentials, bool tls,
    std::shared_ptr<TokenGate> gate);

}  // namespace repro

#endif  // REPRO_COORDINATOR_TOKEN_GATE_H_
