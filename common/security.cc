#include "common/security.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sha256.h"

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

// The DER encoding of the first certificate in `pem`; nullopt when there is none.
std::optional<std::string> CertificateDer(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return std::nullopt;
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return std::nullopt;
  unsigned char* der = nullptr;
  const int size = i2d_X509(cert, &der);
  X509_free(cert);
  if (size <= 0) return std::nullopt;
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(size));
  OPENSSL_free(der);
  return out;
}

// The values of one property of the call's authentication context.
std::vector<std::string> PeerProperty(const grpc::ServerContextBase& ctx, const char* name) {
  std::vector<std::string> out;
  const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr) return out;
  for (const grpc::string_ref& value : auth->FindPropertyValues(name)) {
    out.emplace_back(value.data(), value.size());
  }
  return out;
}

// A loaded token that can serve as a secret; `where` names its file or variable.
absl::Status CheckToken(const std::string& token, const std::string& where) {
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": the token is empty or only blanks"));
  }
  if (token.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": the token has ", token.size(), " characters; a token needs at least ",
        kMinTokenLength, " (make one with: head -c 32 /dev/urandom | base64)"));
  }
  if (token.size() > kMaxTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": the token is longer than ",
                                                   kMaxTokenLength, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SlotOwner(const std::string& name) {
  const size_t colon = name.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == name.size()) return name;
  const bool digits = std::all_of(name.begin() + static_cast<std::ptrdiff_t>(colon) + 1, name.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
  return digits ? name.substr(0, colon) : name;
}

std::string TrimToken(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  const size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the token file"));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = TrimToken(text.str());
  if (absl::Status s = CheckToken(token, path); !s.ok()) return s;
  return token;
}

absl::StatusOr<std::string> TokenFromEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::string();
  std::string token = TrimToken(value);
  if (absl::Status s = CheckToken(token, absl::StrCat("$", name)); !s.ok()) return s;
  return token;
}

absl::StatusOr<std::string> ClientToken(const std::string& token_file) {
  if (!token_file.empty()) return ReadSecretFile(token_file);
  return TokenFromEnv("REPRO_TOKEN");
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

absl::StatusOr<std::string> NewLeaseSecret() {
  unsigned char bytes[16];  // 128 bits: not to be guessed in any number of calls
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return absl::InternalError("OpenSSL's random generator could not make a lease secret");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string SecretHash(const std::string& secret) {
  return Sha256Hex(secret.data(), secret.size());
}

std::vector<std::string> PeerCertificateNames(const grpc::ServerContextBase& ctx) {
  std::vector<std::string> names = PeerProperty(ctx, GRPC_X509_CN_PROPERTY_NAME);
  for (std::string& dns : PeerProperty(ctx, GRPC_PEER_DNS_PROPERTY_NAME)) {
    names.push_back(std::move(dns));
  }
  return names;
}

grpc::Status Authenticator::CheckName(const grpc::ServerContextBase& ctx,
                                      const std::string& name) const {
  if (!own_certificate_der_.has_value()) return grpc::Status::OK;
  const std::vector<std::string> pem = PeerProperty(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (!pem.empty() && CertificateDer(pem.front()) == own_certificate_der_) return grpc::Status::OK;
  const std::vector<std::string> names = PeerCertificateNames(ctx);
  if (std::find(names.begin(), names.end(), SlotOwner(name)) != names.end()) return grpc::Status::OK;
  return grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      absl::StrCat("worker name \"", absl::CHexEscape(name),
                   "\" is not its client certificate's CN or DNS name (",
                   names.empty() ? "it has none" : absl::CHexEscape(absl::StrJoin(names, ", ")),
                   ")"));
}

Role Authenticator::RoleOf(const grpc::ServerContextBase& ctx) const {
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find(kAuthMetadataKey);
  if (it == metadata.end()) return Role::kNone;
  return RoleOfHeader(std::string(it->second.data(), it->second.size()));
}

Role Authenticator::RoleOfHeader(const std::string& value) const {
  const std::string prefix = "Bearer ";
  if (value.compare(0, prefix.size(), prefix) != 0) return Role::kNone;
  // Trimmed as a loaded token is, so the same secret matches however it was read;
  // "Bearer" and blanks is no token at all.
  const std::string token = TrimToken(value.substr(prefix.size()));
  if (token.empty()) return Role::kNone;
  // Both comparisons always run, so timing does not tell which token matched.
  const bool admin = !admin_.empty() && ConstantTimeEquals(token, admin_);
  const bool worker = !worker_.empty() && ConstantTimeEquals(token, worker_);
  if (admin) return Role::kAdmin;
  if (worker) return Role::kWorker;
  return Role::kNone;
}

grpc::Status Authenticator::Check(const grpc::ServerContextBase& ctx, Role needed) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find(kAuthMetadataKey);
  if (it == metadata.end()) return CheckHeader(nullptr, needed);
  const std::string value(it->second.data(), it->second.size());
  return CheckHeader(&value, needed);
}

grpc::Status Authenticator::CheckHeader(const std::string* authorization, Role needed) const {
  if (!enabled()) return grpc::Status::OK;
  const Role role = authorization != nullptr ? RoleOfHeader(*authorization) : Role::kNone;
  if (role == Role::kNone) {
    const bool sent = authorization != nullptr;
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

absl::StatusOr<Authenticator> MakeAuthenticator(std::string admin_token, std::string worker_token,
                                                const TlsFiles& tls) {
  if (tls.ca.empty()) return Authenticator(std::move(admin_token), std::move(worker_token));
  auto pem = ReadPem(tls.cert, "certificate");
  if (!pem.ok()) return pem.status();
  std::optional<std::string> der = CertificateDer(*pem);
  if (!der.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(tls.cert, ": the certificate cannot be parsed"));
  }
  return Authenticator(std::move(admin_token), std::move(worker_token), std::move(der));
}

std::string TlsFailureCause(const grpc::Status& status, const std::string& address,
                            const TlsFiles& tls) {
  // gRPC reports every failed connection as UNAVAILABLE and puts the handshake's error
  // in the message; these are the texts of gRPC 1.51 with OpenSSL 3.
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return "";
  const std::string& m = status.error_message();
  const auto has = [&m](const char* text) { return m.find(text) != std::string::npos; };
  const std::string ca = tls.ca.empty() ? "the system's CAs" : absl::StrCat("the CA in --tls-ca ", tls.ca);
  if (has("wrong version number")) {
    return absl::StrCat("the coordinator at ", address, " does not serve TLS: leave out --tls-ca, "
                        "--tls-cert and --tls-key, or start it with --tls-cert and --tls-key");
  }
  if (has("certificate verify failed")) {
    return absl::StrCat("the certificate of the coordinator at ", address, " is not trusted: ",
                        ca, " did not sign it");
  }
  if (has("is not in peer certificate")) {
    return absl::StrCat("the certificate of the coordinator does not name ", address,
                        ": dial a name or address it lists (its subjectAltName)");
  }
  // A server that closes a new connection without a word: what a TLS server does to a
  // plaintext client, and a mutual-TLS server to a client whose certificate it lacks or
  // refuses. (A coordinator that is away refuses the connection instead, and one that
  // stops during a call fails the call, not the connection.)
  if (!has("failed to connect") || (!has("Socket closed") && !has("Connection reset"))) return "";
  if (!tls.enabled()) {
    return absl::StrCat("the coordinator at ", address, " closed the connection unanswered, as a "
                        "TLS server does to a plaintext client: give --tls-ca with the CA that "
                        "signed its certificate");
  }
  if (tls.cert.empty()) {
    return absl::StrCat("the coordinator at ", address, " closed the TLS connection: it requires a "
                        "client certificate (mutual TLS): give --tls-cert and --tls-key");
  }
  return absl::StrCat("the coordinator at ", address, " closed the TLS connection: it does not "
                      "accept the client certificate ", tls.cert, " (not signed by the CA it "
                      "trusts)");
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return h == "localhost" || h == "::1" || h.compare(0, 4, "127.") == 0;
}

}  // namespace repro
