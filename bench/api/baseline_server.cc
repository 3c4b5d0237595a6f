// Baseline for bench/api/run: the quilt.v1.Quilt service from
// proto/quilt.proto, served by the official gRPC C++ library (Debian's
// libgrpc++), answering GetSystemInfo and GetContainer with canned messages.
//
// The canned answers are the very bytes quiltd returned for the same calls
// (the script saves them with curl), so both servers pack and send messages
// of the same size and content. Every other method answers UNIMPLEMENTED
// (the generated AsyncService does that for methods nobody requests).
//
// Threading: the asynchronous (completion queue) API with exactly one
// completion queue, polled by the main thread; no sync or callback methods
// are registered, so gRPC starts no request-handling thread pool. The only
// other threads are gRPC core's own (timer manager, executor), which idle.
// The script pins the whole process to one CPU anyway.
//
//   baseline_server --listen 127.0.0.1:PORT --sysinfo FILE --container FILE
//
// FILE holds one serialized message (SystemInfo, Container). GetContainer
// answers the canned Container when the request's id is a prefix of its id
// (quiltd accepts id prefixes too), NOT_FOUND otherwise. Prints "ready" on
// stdout once serving. On SIGTERM or SIGINT it shuts down and prints
// "served GetSystemInfo=N GetContainer=M" (replies sent with status OK), then
// exits 0; the script checks those counts against h2load's.
#include <grpcpp/grpcpp.h>

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "quilt.grpc.pb.h"

namespace {

using quilt::v1::Container;
using quilt::v1::GetContainerRequest;
using quilt::v1::GetSystemInfoRequest;
using quilt::v1::Quilt;
using quilt::v1::SystemInfo;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

SystemInfo g_sysinfo;
Container g_container;
unsigned long long g_served_sysinfo = 0, g_served_container = 0;

struct Tag {
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

class SysInfoCall final : public Tag {
 public:
  SysInfoCall(Quilt::AsyncService *svc, grpc::ServerCompletionQueue *cq)
      : svc_(svc), cq_(cq), responder_(&ctx_) {
    svc_->RequestGetSystemInfo(&ctx_, &req_, &responder_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (state_ == kWaiting) {
      if (!ok) {  // shutting down
        delete this;
        return;
      }
      new SysInfoCall(svc_, cq_);  // keep one request armed
      state_ = kReplied;
      responder_.Finish(g_sysinfo, grpc::Status::OK, this);
    } else {
      if (ok)
        g_served_sysinfo++;
      delete this;
    }
  }

 private:
  enum { kWaiting, kReplied } state_ = kWaiting;
  Quilt::AsyncService *svc_;
  grpc::ServerCompletionQueue *cq_;
  grpc::ServerContext ctx_;
  GetSystemInfoRequest req_;
  grpc::ServerAsyncResponseWriter<SystemInfo> responder_;
};

class GetContainerCall final : public Tag {
 public:
  GetContainerCall(Quilt::AsyncService *svc, grpc::ServerCompletionQueue *cq)
      : svc_(svc), cq_(cq), responder_(&ctx_) {
    svc_->RequestGetContainer(&ctx_, &req_, &responder_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (state_ == kWaiting) {
      if (!ok) {
        delete this;
        return;
      }
      new GetContainerCall(svc_, cq_);
      state_ = kReplied;
      const std::string &want = req_.id();
      if (!want.empty() && g_container.id().compare(0, want.size(), want) == 0) {
        found_ = true;
        responder_.Finish(g_container, grpc::Status::OK, this);
      } else {
        responder_.FinishWithError(
            grpc::Status(grpc::StatusCode::NOT_FOUND, "no such container: " + want), this);
      }
    } else {
      if (ok && found_)
        g_served_container++;
      delete this;
    }
  }

 private:
  enum { kWaiting, kReplied } state_ = kWaiting;
  bool found_ = false;
  Quilt::AsyncService *svc_;
  grpc::ServerCompletionQueue *cq_;
  grpc::ServerContext ctx_;
  GetContainerRequest req_;
  grpc::ServerAsyncResponseWriter<Container> responder_;
};

bool read_message(const char *path, google::protobuf::Message *m) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::stringstream ss;
  ss << in.rdbuf();
  return m->ParseFromString(ss.str());
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: baseline_server --listen HOST:PORT --sysinfo FILE --container FILE\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char **argv) {
  const char *listen = nullptr, *sysinfo = nullptr, *container = nullptr;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      usage();
    if (!std::strcmp(argv[i], "--listen"))
      listen = argv[++i];
    else if (!std::strcmp(argv[i], "--sysinfo"))
      sysinfo = argv[++i];
    else if (!std::strcmp(argv[i], "--container"))
      container = argv[++i];
    else
      usage();
  }
  if (!listen || !sysinfo || !container)
    usage();
  if (!read_message(sysinfo, &g_sysinfo) || !read_message(container, &g_container) ||
      g_container.id().empty()) {
    std::fprintf(stderr, "baseline_server: cannot read the canned messages %s, %s\n", sysinfo,
                 container);
    return 1;
  }

  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  Quilt::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "baseline_server: cannot listen on %s\n", listen);
    return 1;
  }
  new SysInfoCall(&service, cq.get());
  new GetContainerCall(&service, cq.get());
  std::printf("ready %d\n", port);
  std::fflush(stdout);

  // One thread drives everything. The deadline only bounds how late a
  // signal is noticed; an idle server wakes 5 times a second.
  bool shutting_down = false;
  std::thread shutter;
  for (;;) {
    void *tag = nullptr;
    bool ok = false;
    auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(200);
    grpc::CompletionQueue::NextStatus st = cq->AsyncNext(&tag, &ok, deadline);
    if (st == grpc::CompletionQueue::SHUTDOWN)
      break;
    if (st == grpc::CompletionQueue::GOT_EVENT)
      static_cast<Tag *>(tag)->Proceed(ok);
    if (g_stop && !shutting_down) {
      // Server::Shutdown waits for calls in flight, which need this thread
      // to drain the queue: run it on a helper thread.
      shutting_down = true;
      shutter = std::thread([&server, &cq] {
        server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
        cq->Shutdown();
      });
    }
  }
  if (shutter.joinable())
    shutter.join();
  std::printf("served GetSystemInfo=%llu GetContainer=%llu\n", g_served_sysinfo,
              g_served_container);
  std::fflush(stdout);
  return 0;
}
