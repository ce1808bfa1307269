// Authentication and encryption for every repro connection.
//
// Tokens: a shared secret sent by workers and reproctl as call metadata
// ("authorization: Bearer <token>") and checked by the coordinator in constant time on
// every call except the standard health service. The admin token may make every call;
// a separate worker token (optional) may make only the worker service's calls, so a
// worker's secret cannot cancel an experiment or read its report.
// TLS: server certificate and key on the coordinator, the CA that signed it on the
// clients; with a CA on the coordinator too, clients must present certificates signed
// by it (mutual TLS).
//
// Thread safety: Authenticator is immutable after construction; free functions are
// thread-safe.
#ifndef REPRO_COMMON_SECURITY_H_
#define REPRO_COMMON_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace repro {

inline constexpr char kAuthMetadataKey[] = "authorization";

// The secret in a file, without surrounding whitespace; an empty or unreadable file is
// an error naming the file.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// The token a client sends: --token-file when given, else $REPRO_TOKEN, else none ("").
absl::StatusOr<std::string> ClientToken(const std::string& token_file);

// Compares without an early exit, so the time taken does not reveal how much matched.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

enum class Role { kNone, kWorker, kAdmin };

class Authenticator {
 public:
  // No tokens: every call is allowed (only sensible on loopback).
  Authenticator(std::string admin_token, std::string worker_token)
      : admin_(std::move(admin_token)), worker_(std::move(worker_token)) {}
  bool enabled() const { return !admin_.empty() || !worker_.empty(); }
  // The role the call's token grants.
  Role RoleOf(const grpc::ServerContextBase& ctx) const;
  // OK when the call may go on; UNAUTHENTICATED (no or wrong token) or
  // PERMISSION_DENIED (a worker token on an admin call) otherwise.
  grpc::Status Check(const grpc::ServerContextBase& ctx, Role needed) const;

 private:
  std::string admin_;
  std::string worker_;
};

// Adds the token to a call's metadata (nothing when the token is empty).
void AttachToken(grpc::ClientContext* ctx, const std::string& token);

struct TlsFiles {
  std::string cert;  // PEM certificate (server: its own; client: for mutual TLS)
  std::string key;   // PEM private key of that certificate
  std::string ca;    // PEM CA: server: require client certificates signed by it;
                     // client: verify the server's certificate with it
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& tls);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsFiles& tls);

// True for 127.0.0.0/8, ::1 and "localhost": addresses no other machine can reach.
bool IsLoopbackHost(const std::string& host);

}  // namespace repro

#endif  // REPRO_COMMON_SECURITY_H_
