#include "runner/runner.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <variant>

#include "config/logging.h"
#include "runner/curl_handles.h"
#include "runner/runner_metrics.h"
#include "runner/scheduler.h"
#include "runner/state_machine.h"

namespace vigil {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The loop wakes at least this often, so last_alive() proves it is not stuck.
constexpr auto kMaxSleep = 1000ms;

struct UpsertCommand {
  Service service;
};
struct RemoveCommand {
  ServiceId id;
};
using Command = std::variant<UpsertCommand, RemoveCommand>;

std::chrono::nanoseconds interval_of(const ServiceSpec& spec) {
  // A zero interval would make the scheduler spin on one service.
  return std::max<std::chrono::nanoseconds>(spec.interval, 1ms);
}

// Whether a change of spec changes what a probe does (and so an in-flight probe is stale).
bool probe_changed(const ServiceSpec& a, const ServiceSpec& b) {
  return a.url != b.url || a.method != b.method || a.headers != b.headers ||
         a.timeout != b.timeout || a.expected_status != b.expected_status;
}

}  // namespace

class Runner::Loop {
 public:
  Loop(RunnerOptions options, TickSink sink, prometheus::Registry& registry)
      : options_(std::move(options)), sink_(std::move(sink)), metrics_(registry) {
    ensure_curl_global_init();
    multi_.reset(curl_multi_init());
    if (!multi_) throw std::runtime_error("curl_multi_init failed");
    options_.max_concurrency = std::max<std::size_t>(options_.max_concurrency, 1);
  }

  ~Loop() {
    stop();
    // Only reached with probes in flight when start() was never called or the thread died;
    // curl wants every easy handle out of the multi before curl_multi_cleanup.
    for (auto& [id, entry] : services_) abandon(entry);
  }

  void start(std::vector<Service> services, std::unordered_map<ServiceId, ServiceRuntime> runtime) {
    std::lock_guard lock(lifecycle_mutex_);
    if (started_) throw std::logic_error("Runner::start called twice");
    started_ = true;
    // The thread does not exist yet, so this thread may still build its state.
    const auto now = Clock::now();
    for (auto& service : services) {
      const ServiceId id = service.id;
      upsert(std::move(service), now);
      auto it = services_.find(id);
      auto stored = runtime.find(id);
      if (it != services_.end() && stored != runtime.end()) {
        it->second.runtime = std::move(stored->second);
        metrics_.record_state(it->second.metrics, it->second.spec.name, it->second.runtime);
      }
    }
    last_alive_ms_ = to_unix_ms(now_ms());
    thread_ = std::thread([this] { run(); });
  }

  void enqueue(Command command) {
    {
      std::lock_guard lock(commands_mutex_);
      commands_.push_back(std::move(command));
      metrics_.queue_depth.Set(double(commands_.size()));
    }
    curl_multi_wakeup(multi_.get());
  }

  void stop() {
    std::lock_guard lock(lifecycle_mutex_);
    {
      std::lock_guard commands_lock(commands_mutex_);
      stop_requested_ = true;
    }
    if (thread_.joinable()) {
      curl_multi_wakeup(multi_.get());
      thread_.join();
    }
  }

  TimePoint last_alive() const { return from_unix_ms(last_alive_ms_.load()); }
  std::size_t in_flight() const { return in_flight_count_.load(); }

 private:
  // A probe the multi handle is running. CURLOPT_PRIVATE points here; the owning Entry holds
  // it, so abandoning or finishing it is one place.
  struct InFlight {
    ServiceId service;
    std::unique_ptr<Probe> probe;
    TimePoint started;  // wall clock, becomes tick.ts
  };

  // Everything the runner keeps per service, kept small for 100,000 services.
  struct Entry {
    ServiceSpec spec;
    ServiceRuntime runtime;
    std::uint64_t generation = 0;  // the heap entry carrying this value is the live one
    SteadyTime next_due;           // the slot that heap entry holds
    std::unique_ptr<InFlight> in_flight;
    ServiceMetrics metrics;
  };

  void run() {
    bool draining = false;
    for (;;) {
      if (apply_commands() && !draining) {
        draining = true;
        log_info("runner: stopping; waiting for " + std::to_string(in_flight_count_.load()) +
                 " probes in flight");
      }
      if (!draining) start_due_probes(Clock::now());
      int running = 0;
      const CURLMcode performed = curl_multi_perform(multi_.get(), &running);
      if (performed != CURLM_OK) {
        log_error(std::string("runner: curl_multi_perform: ") + curl_multi_strerror(performed));
      }
      collect_finished();
      if (draining && in_flight_count_ == 0) break;

      const CURLMcode polled =
          curl_multi_poll(multi_.get(), nullptr, 0, poll_timeout_ms(draining), nullptr);
      if (polled != CURLM_OK) {
        log_error(std::string("runner: curl_multi_poll: ") + curl_multi_strerror(polled));
        std::this_thread::sleep_for(10ms);  // do not spin on a persistent error
      }
      last_alive_ms_ = to_unix_ms(now_ms());
    }
    log_info("runner: stopped");
  }

  // Applies queued commands; returns whether stop() was requested.
  bool apply_commands() {
    bool stop = false;
    {
      std::lock_guard lock(commands_mutex_);
      stop = stop_requested_;
      if (commands_.empty()) return stop;
      // Swapping with a cleared scratch vector keeps both buffers' capacity: no allocation per
      // command batch.
      commands_.swap(scratch_commands_);
      metrics_.queue_depth.Set(0);
    }
    const auto now = Clock::now();
    for (auto& command : scratch_commands_) {
      if (auto* upsert_command = std::get_if<UpsertCommand>(&command)) {
        upsert(std::move(upsert_command->service), now);
      } else {
        remove(std::get<RemoveCommand>(command).id);
      }
    }
    scratch_commands_.clear();
    return stop;
  }

  void upsert(Service service, SteadyTime now) {
    if (!service.active) {
      remove(service.id);
      return;
    }
    auto [it, inserted] = services_.try_emplace(service.id);
    Entry& entry = it->second;
    ServiceSpec& spec = service.spec;
    if (inserted) {
      entry.generation = ++generation_counter_;
      entry.next_due = now + first_probe_offset(spec.name, interval_of(spec));
      scheduler_.schedule(service.id, entry.next_due, entry.generation);
      entry.spec = std::move(spec);
      metrics_.services.Set(double(services_.size()));
      log_debug("runner: added service " + entry.spec.name);
      return;
    }

    // A probe of the old URL/method/timeout measures something no longer asked for, and with a
    // long timeout it would hold back the new spec's first probe: abandon it.
    if (entry.in_flight && probe_changed(entry.spec, spec)) abandon(entry);
    if (entry.spec.interval != spec.interval) {
      // Keep the phase: the next slot is one new interval after the last slot, or now.
      const SteadyTime last_slot = entry.next_due - interval_of(entry.spec);
      entry.next_due = std::max(now, last_slot + interval_of(spec));
      entry.generation = ++generation_counter_;  // the old heap entry becomes stale
      scheduler_.schedule(service.id, entry.next_due, entry.generation);
    }
    const bool renamed = entry.spec.name != spec.name;
    entry.spec = std::move(spec);
    if (renamed) {
      // The name is the series' label: move them to the new one.
      metrics_.remove(entry.metrics);
      metrics_.record_state(entry.metrics, entry.spec.name, entry.runtime);
    }
    log_debug("runner: updated service " + entry.spec.name);
  }

  void remove(ServiceId id) {
    auto it = services_.find(id);
    if (it == services_.end()) return;
    abandon(it->second);
    metrics_.remove(it->second.metrics);
    log_debug("runner: removed service " + it->second.spec.name);
    // Its heap entry stays behind and is skipped: no service has that id and generation.
    services_.erase(it);
    metrics_.services.Set(double(services_.size()));
  }

  // Drops an in-flight probe without recording anything.
  void abandon(Entry& entry) {
    if (!entry.in_flight) return;
    curl_multi_remove_handle(multi_.get(), entry.in_flight->probe->easy());
    entry.in_flight.reset();
    --in_flight_count_;
    metrics_.in_flight.Set(double(in_flight_count_.load()));
  }

  // Starts every due probe there is room for. Entries past the concurrency cap stay in the heap
  // and start, late, as soon as probes finish.
  void start_due_probes(SteadyTime now) {
    while (in_flight_count_ < options_.max_concurrency) {
      const auto due = scheduler_.pop_due(now);
      if (!due) return;
      auto it = services_.find(due->service);
      if (it == services_.end() || it->second.generation != due->generation) continue;  // stale
      Entry& entry = it->second;

      // Fixed rate: the next slot follows from this slot, not from when the probe runs, so
      // lateness never accumulates into drift. Slots already past (the runner was saturated
      // or suspended) are skipped, not fired in a burst.
      const auto interval = interval_of(entry.spec);
      SteadyTime next = due->due + interval;
      if (next <= now) {
        const auto missed = (now - due->due) / interval;
        next = due->due + (missed + 1) * interval;
        metrics_.skipped.Increment(double(missed));
      }
      entry.next_due = next;
      scheduler_.schedule(due->service, next, entry.generation);

      if (entry.in_flight) {
        // Overlapping probes of one service would only pile up on a struggling target.
        metrics_.skipped.Increment();
        log_debug("runner: " + entry.spec.name + " still in flight, slot skipped");
        continue;
      }
      start_probe(entry, due->service, due->due, now);
    }
  }

  void start_probe(Entry& entry, ServiceId id, SteadyTime due, SteadyTime now) {
    std::unique_ptr<Probe> probe;
    try {
      probe = make_http_probe(entry.spec, options_.limits);
    } catch (const std::exception& e) {
      log_error("runner: cannot start probe of " + entry.spec.name + ": " + e.what());
      return;
    }
    auto in_flight = std::make_unique<InFlight>(InFlight{id, std::move(probe), now_ms()});
    CURL* easy = in_flight->probe->easy();
    curl_easy_setopt(easy, CURLOPT_PRIVATE, in_flight.get());
    const CURLMcode added = curl_multi_add_handle(multi_.get(), easy);
    if (added != CURLM_OK) {
      log_error("runner: cannot start probe of " + entry.spec.name + ": " +
                curl_multi_strerror(added));
      return;
    }
    entry.in_flight = std::move(in_flight);
    ++in_flight_count_;
    metrics_.in_flight.Set(double(in_flight_count_.load()));
    metrics_.lateness.Observe(std::chrono::duration<double>(now - due).count());
  }

  void collect_finished() {
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      // Copy out before remove_handle: the message belongs to the handle.
      CURL* easy = message->easy_handle;
      const CURLcode code = message->data.result;
      char* user = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &user);
      curl_multi_remove_handle(multi_.get(), easy);
      finish(reinterpret_cast<InFlight*>(user), code);
    }
  }

  void finish(InFlight* done, CURLcode code) {
    auto it = services_.find(done->service);
    // remove() and upsert() take a probe out of the multi before dropping it, so a finished
    // probe always belongs to its service; anything else is a bug worth a line, not a crash.
    if (it == services_.end() || it->second.in_flight.get() != done) {
      log_error("runner: finished probe has no service");
      return;
    }
    Entry& entry = it->second;
    const std::unique_ptr<InFlight> owned = std::move(entry.in_flight);
    --in_flight_count_;
    metrics_.in_flight.Set(double(in_flight_count_.load()));

    const ProbeResult result = owned->probe->finish(code);
    TickOutcome outcome =
        apply_probe_result(entry.runtime, done->service, result, owned->started, options_.region);
    metrics_.record_probe(entry.metrics, entry.spec.name, result);
    metrics_.record_state(entry.metrics, entry.spec.name, entry.runtime);
    if (outcome.transition) {
      log_info(describe_transition(entry.spec.name, *outcome.transition, result));
    } else if (log_enabled(LogLevel::debug)) {
      log_debug("runner: " + entry.spec.name + (result.up ? " up" : " down: " + result.error) +
                " in " + std::to_string(result.response_ms) + " ms");
    }
    try {
      sink_(std::move(outcome.record));
    } catch (const std::exception& e) {
      // The sink must not throw; if it does, losing one tick beats losing the runner thread.
      log_error(std::string("runner: tick sink failed: ") + e.what());
    }
  }

  // How long curl_multi_poll may sleep: until the next due slot when a probe could start, at
  // most kMaxSleep. curl shortens it further for its own timers (timeouts, connect retries).
  int poll_timeout_ms(bool draining) const {
    auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(kMaxSleep);
    if (!draining && in_flight_count_ < options_.max_concurrency) {
      if (const auto next = scheduler_.peek()) {
        wait = std::clamp<std::chrono::nanoseconds>(next->due - Clock::now(), 0ns, wait);
      }
    }
    // Round up: sleeping 0 ms for a slot 0.3 ms away would spin.
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
  }

  RunnerOptions options_;
  TickSink sink_;
  RunnerMetrics metrics_;
  CurlMultiPtr multi_;  // declared before services_: destroyed after every easy handle is out

  // Runner thread only.
  Scheduler scheduler_;
  std::unordered_map<ServiceId, Entry> services_;
  std::uint64_t generation_counter_ = 0;
  std::vector<Command> scratch_commands_;

  // Shared with other threads.
  std::mutex commands_mutex_;
  std::vector<Command> commands_;  // guarded by commands_mutex_
  bool stop_requested_ = false;    // guarded by commands_mutex_
  std::atomic<std::int64_t> last_alive_ms_{0};
  std::atomic<std::size_t> in_flight_count_{0};

  std::mutex lifecycle_mutex_;  // serialises start() and stop()
  bool started_ = false;
  std::thread thread_;
};

Runner::Runner(RunnerOptions options, TickSink sink, prometheus::Registry& registry)
    : loop_(std::make_unique<Loop>(std::move(options), std::move(sink), registry)) {}

Runner::~Runner() { stop(); }

void Runner::start(std::vector<Service> services,
                   std::unordered_map<ServiceId, ServiceRuntime> runtime) {
  loop_->start(std::move(services), std::move(runtime));
}

void Runner::upsert_service(Service service) { loop_->enqueue(UpsertCommand{std::move(service)}); }

void Runner::remove_service(ServiceId id) { loop_->enqueue(RemoveCommand{id}); }

void Runner::stop() { loop_->stop(); }

TimePoint Runner::last_alive() const { return loop_->last_alive(); }

std::size_t Runner::in_flight() const { return loop_->in_flight(); }

}  // namespace vigil
