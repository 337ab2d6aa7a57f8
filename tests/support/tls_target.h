// Probe depth: a real HTTPS target for tests. A cpp-httplib SSLServer on an ephemeral
// 127.0.0.1 port with a certificate the test makes with the openssl CLI, so TLS timings,
// certificate dates and verification are exercised for real.
//   /ok     200 "ok"
//   /to-http?port=P   302 to http://127.0.0.1:P/ok
#pragma once

#include <memory>
#include <string>
#include <thread>

namespace httplib {
class SSLServer;
}

namespace vigil::test {

class TempDir;

// A self-signed certificate (its own CA) for 127.0.0.1 and localhost, and its key, as PEM files.
struct CertificateFiles {
  std::string cert;
  std::string key;
};

// Makes one in `dir` with `openssl req -x509`, valid from now for `days`; files are named after
// `name`. Throws std::runtime_error when openssl fails.
CertificateFiles make_self_signed_certificate(const TempDir& dir, int days,
                                              const std::string& name = "server",
                                              const std::string& common_name = "localhost");

class TlsTargetServer {
 public:
  // Serves with `server`'s certificate; with `client_ca` non-empty, requires a client
  // certificate signed by it (mutual TLS). Starts listening; throws on failure.
  explicit TlsTargetServer(const CertificateFiles& server, const std::string& client_ca = "");
  ~TlsTargetServer();  // stops and joins
  TlsTargetServer(const TlsTargetServer&) = delete;
  TlsTargetServer& operator=(const TlsTargetServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path) const;  // "https://127.0.0.1:<port><path>"

 private:
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace vigil::test
