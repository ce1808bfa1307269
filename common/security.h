// Authentication and encryption for every repro connection.
//
// Tokens: a shared secret sent by workers and reproctl as call metadata
// ("authorization: Bearer <token>") and checked by the coordinator in constant time on
// every call except the standard health service. The admin token may make every call;
// a separate worker token (optional) may make only the worker service's calls, so a
// worker's secret cannot cancel an experiment or read its report.
// TLS: server certificate and key on the coordinator, the CA that signed it on the
// clients; with a CA on the coordinator too, clients must present certificates signed
// by it (mutual TLS), and a worker's name is bound to its certificate.
// Lease secrets: what proves that a call about a lease comes from the worker it was
// handed to (a worker's name alone is only its word).
//
// Thread safety: Authenticator is immutable after construction; free functions are
// thread-safe.
#ifndef REPRO_COMMON_SECURITY_H_
#define REPRO_COMMON_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace repro {

inline constexpr char kAuthMetadataKey[] = "authorization";

// A token must be at least this long to be a secret (README, "Security"); a shorter one
// is refused where it is loaded.
inline constexpr size_t kMinTokenLength = 16;
inline constexpr size_t kMaxTokenLength = 4096;

// A token as written (in a file, a variable, after "Bearer "), without surrounding
// whitespace. Every reader of a token and the coordinator's check go through it, so that
// a file's final newline never makes one secret two.
std::string TrimToken(std::string_view text);

// The token in a file (TrimToken); an unreadable file, or a token empty or shorter than
// kMinTokenLength, is an error naming the file.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// The token in environment variable `name` (TrimToken); none ("") when it is unset or
// empty; blanks only, or a token shorter than kMinTokenLength, is an error naming it.
absl::StatusOr<std::string> TokenFromEnv(const char* name);

// The token a client sends: --token-file when given, else $REPRO_TOKEN, else none ("").
absl::StatusOr<std::string> ClientToken(const std::string& token_file);

// Compares without an early exit, so the time taken does not reveal how much matched.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// A new lease secret: 128 bits from OpenSSL's CSPRNG as 32 hex digits. An error only
// when the generator cannot be seeded.
absl::StatusOr<std::string> NewLeaseSecret();
// The SHA-256 of `secret` as 64 hex digits: all the coordinator keeps of a lease secret,
// so that a copy of its database does not let anyone report for a running lease.
std::string SecretHash(const std::string& secret);

// The names a verified client certificate gives the caller: its subject's CN and the
// DNS names of its subjectAltName; none without a client certificate.
std::vector<std::string> PeerCertificateNames(const grpc::ServerContextBase& ctx);

// The worker a slot's name belongs to: "NAME" for "NAME:k" (k all digits; worker/slots.h),
// else `name` itself. Neither DNS names nor certificate CNs as issued contain ':', so a
// certificate for NAME covers exactly NAME and its slots.
std::string SlotOwner(const std::string& name);

enum class Role { kNone, kWorker, kAdmin };

class Authenticator {
 public:
  // No tokens: every call is allowed (only sensible on loopback).
  // With mutual TLS, `own_certificate_der` is the coordinator's own certificate (DER):
  // set, worker names are bound to client certificates (CheckName). Its local workers
  // present that certificate; whoever holds its key is the coordinator, so its names
  // are not bound.
  Authenticator(std::string admin_token, std::string worker_token,
                std::optional<std::string> own_certificate_der = std::nullopt)
      : admin_(std::move(admin_token)), worker_(std::move(worker_token)),
        own_certificate_der_(std::move(own_certificate_der)) {}
  bool enabled() const { return !admin_.empty() || !worker_.empty(); }
  // The role the call's token grants.
  Role RoleOf(const grpc::ServerContextBase& ctx) const;
  // OK when the call may go on; UNAUTHENTICATED (no or wrong token) or
  // PERMISSION_DENIED (a worker token on an admin call) otherwise.
  grpc::Status Check(const grpc::ServerContextBase& ctx, Role needed) const;
  // The same check on the value of a call's authorization header (nullptr: the call has
  // none), for a check made before the call reaches a handler (coordinator/token_gate.h).
  grpc::Status CheckHeader(const std::string* authorization, Role needed) const;

  // OK when the caller may act as worker `name`: always without name binding; with it,
  // only when `name`, or the worker whose slot it is (SlotOwner), is one of
  // PeerCertificateNames (PERMISSION_DENIED otherwise).
  grpc::Status CheckName(const grpc::ServerContextBase& ctx, const std::string& name) const;

 private:
  // The role an authorization header's value grants.
  Role RoleOfHeader(const std::string& authorization) const;

  std::string admin_;
  std::string worker_;
  std::optional<std::string> own_certificate_der_;  // set: names are bound
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

// What a client should be told when a call to `address` failed to connect because of
// TLS, where the client can tell from gRPC's error: a plaintext client of a TLS server,
// a TLS client of a plaintext server, a server certificate not signed by the CA it
// trusts or not naming `address`, a server that wants a client certificate it did not
// get or does not accept. "" for any other failure (the coordinator may only be away).
// `tls` is the client's own files.
std::string TlsFailureCause(const grpc::Status& status, const std::string& address,
                            const TlsFiles& tls);

// The coordinator's Authenticator: its tokens, and with mutual TLS (a CA in `tls`) worker
// names bound to certificates, with `tls.cert` as its own; an unreadable certificate is
// an error naming the file.
absl::StatusOr<Authenticator> MakeAuthenticator(std::string admin_token, std::string worker_token,
                                                const TlsFiles& tls);

// True for 127.0.0.0/8, ::1 and "localhost": addresses no other machine can reach.
bool IsLoopbackHost(const std::string& host);

}  // namespace repro

#endif  // REPRO_COMMON_SECURITY_H_
