#include "common/security.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace repro {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the ", what));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the ", what, " is not in PEM format"));
  }
  return text.str();
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  const size_t end = s.find_last_not_of(" \t\r\n");
  return s.substr(begin, end - begin + 1);
}

}  // namespace

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the token file"));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = Trim(text.str());
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": the token file is empty"));
  if (token.size() > 4096) return absl::InvalidArgumentError(absl::StrCat(path, ": the token is longer than 4096 bytes"));
  return token;
}

absl::StatusOr<std::string> ClientToken(const std::string& token_file) {
  if (!token_file.empty()) return ReadSecretFile(token_file);
  const char* env = std::getenv("REPRO_TOKEN");
  return std::string(env != nullptr ? Trim(env) : "");
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Every byte of the longer string is visited whatever the contents.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

Role Authenticator::RoleOf(const grpc::ServerContextBase& ctx) const {
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find(kAuthMetadataKey);
  if (it == metadata.end()) return Role::kNone;
  const std::string value(it->second.data(), it->second.size());
  const std::string prefix = "Bearer ";
  if (value.compare(0, prefix.size(), prefix) != 0) return Role::kNone;
  const std::string token = value.substr(prefix.size());
  // Both comparisons always run, so timing does not tell which token matched.
  const bool admin = !admin_.empty() && ConstantTimeEquals(token, admin_);
  const bool worker = !worker_.empty() && ConstantTimeEquals(token, worker_);
  if (admin) return Role::kAdmin;
  if (worker) return Role::kWorker;
  return Role::kNone;
}

grpc::Status Authenticator::Check(const grpc::ServerContextBase& ctx, Role needed) const {
  if (!enabled()) return grpc::Status::OK;
  const Role role = RoleOf(ctx);
  if (role == Role::kNone) {
    const bool sent = ctx.client_metadata().count(kAuthMetadataKey) > 0;
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        sent ? "the token is not valid" : "this coordinator needs a token (REPRO_TOKEN or --token-file)");
  }
  if (needed == Role::kAdmin && role != Role::kAdmin) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "a worker token may not make this call; use the admin token");
  }
  return grpc::Status::OK;
}

void AttachToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata(kAuthMetadataKey, "Bearer " + token);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  if (tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  auto cert = ReadPem(tls.cert, "certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(tls.key, "private key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(
      tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!tls.ca.empty()) {
    auto ca = ReadPem(tls.ca, "CA certificate");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError("a client certificate needs both --tls-cert and --tls-key");
  }
  grpc::SslCredentialsOptions options;
  if (!tls.ca.empty()) {
    auto ca = ReadPem(tls.ca, "CA certificate");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (!tls.cert.empty()) {
    auto cert = ReadPem(tls.cert, "certificate");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(tls.key, "private key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return h == "localhost" || h == "::1" || h.compare(0, 4, "127.") == 0;
}

}  // namespace repro
