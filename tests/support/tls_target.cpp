#include "support/tls_target.h"

#include <httplib.h>

#include <chrono>
#include <stdexcept>

#include "support/process.h"
#include "support/target_server.h"

namespace vigil::test {

CertificateFiles make_self_signed_certificate(const TempDir& dir, int days, const std::string& name,
                                              const std::string& common_name) {
  CertificateFiles files{dir.file(name + ".crt"), dir.file(name + ".key")};
  const std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days " +
                              std::to_string(days) + " -subj /CN=" + common_name +
                              " -addext subjectAltName=IP:127.0.0.1,DNS:localhost" + " -keyout " +
                              files.key + " -out " + files.cert + " 2>&1";
  const CommandResult result = run_command(command);
  if (result.exit_code != 0) throw std::runtime_error("openssl failed: " + result.output);
  return files;
}

TlsTargetServer::TlsTargetServer(const CertificateFiles& server, const std::string& client_ca)
    : server_(
          std::make_unique<httplib::SSLServer>(server.cert.c_str(), server.key.c_str(),
                                               client_ca.empty() ? nullptr : client_ca.c_str())) {
  auto& s = *server_;
  if (!s.is_valid()) throw std::runtime_error("tls target: cannot load the certificate");
  s.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  s.Get("/to-http", [](const httplib::Request& req, httplib::Response& res) {
    res.set_redirect("http://127.0.0.1:" + req.get_param_value("port") + "/ok");
  });
  port_ = s.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("tls target: cannot bind 127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TlsTargetServer::~TlsTargetServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string TlsTargetServer::url(const std::string& path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + path;
}

}  // namespace vigil::test
