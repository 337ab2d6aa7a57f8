// vigil: wires config, storage, runner and api together.
//   vigil run           runner and API in one process
//   vigil runner        the runner alone (another process may serve the API on the same DB)
//   vigil api           the API alone, reading the database
//   vigil check-config  validate .env and the services file, list the services, start nothing
//   vigil beat          run a command and report it to a heartbeat's push URL
//   vigil probe URL     probe once now and print a report (runner/probe_report.h)
//   vigil migrate       copy a SQLite database into PostgreSQL (storage/migrate/)
#include <prometheus/registry.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>  // and POSIX sigwait, pthread_sigmask, which glibc declares there too
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "alerting/alerter.h"
#include "alerting/alerting_config.h"
#include "api/commands.h"
#include "api/push_client.h"
#include "api/server.h"
#include "config/config.h"
#include "config/database_url.h"
#include "core/logging.h"
#include "core/probe_kind.h"
#include "core/shards.h"
#include "core/url_redaction.h"
#include "runner/curl_handles.h"
#include "runner/probe_report.h"
#include "runner/runner.h"
#include "storage/change_feed.h"
#include "storage/cluster.h"
#include "storage/component_beats.h"
#include "storage/database.h"
#include "storage/migrate/migrate_command.h"
#include "storage/postgres/postgres_store.h"
#include "storage/retention.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "storage/writer.h"

namespace {

using namespace vigil;

constexpr int kExitConfigError = 2;
constexpr int kExitStartupFailure = 1;

void print_usage(std::ostream& out) {
  out << "usage: vigil <command>\n"
         "  run           probe services and serve the API (default)\n"
         "  runner        probe services only\n"
         "  api           serve the API only, from the database\n"
         "  check-config  validate .env and the services file, list services, exit\n"
         "  beat <push-url-or-token> [--fail] [--msg TEXT] [-- COMMAND...]\n"
         "                run COMMAND, then report success or failure to a heartbeat\n"
         "  probe URL [options]\n"
         "                probe once now: phases, certificate, conditions (see probe --help)\n"
         "  migrate --from <sqlite file> --to <postgresql://... or libpq conninfo>\n"
         "                copy everything of a SQLite database into an empty PostgreSQL one\n"
         "  version       print the version\n"
         "Settings come from .env in the working directory and the environment (see README).\n";
}

struct Modes {
  bool runner = false;
  bool api = false;
};

// The progress of this process's own parts, for its beats and its /healthz. A part not started
// yet (its time still the epoch) is left out rather than reported silent since 1970.
std::vector<PartSample> own_parts(const Runner* runner, const Writer* writer,
                                  const Alerter* alerter) {
  std::vector<PartSample> parts;
  const auto add = [&](const char* part, TimePoint at) {
    if (at > TimePoint{}) parts.push_back(PartSample{part, at});
  };
  if (runner) add("runner", runner->last_alive());
  if (writer) add("writer", writer->last_progress());
  if (alerter) add("alerter", alerter->last_progress());
  return parts;
}

std::string seconds_text(Millis ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", double(ms.count()) / 1000.0);
  return text;
}

// ${NAME} in the services file's "alerting" section: the environment, else .env.
EnvLookup alerting_environment() {
  return [dotenv = read_dotenv(".env")](const std::string& name) -> std::optional<std::string> {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    const auto found = dotenv.find(name);
    if (found == dotenv.end()) return std::nullopt;
    return found->second;
  };
}

int check_config(const Settings& settings) {
  const auto specs = load_services_file(settings.services_file, settings);
  const auto alerting = load_alerting_config(settings.services_file, alerting_environment());
  check_alert_routes(alerting, specs, settings.services_file);
  std::cout << settings.services_file << ": " << specs.size() << " services, all valid\n";
  for (const auto& spec : specs) {
    if (spec.kind == ServiceKind::heartbeat) {
      std::cout << "  " << spec.name << "  heartbeat  every " << seconds_text(spec.interval)
                << " s, grace " << seconds_text(spec.grace) << " s, down after " << spec.threshold
                << " missed\n";
      continue;
    }
    // A kind that sends no HTTP request (tcp://) has no method to show.
    const ProbeKindInfo* kind = probe_kind_for(spec.url);
    std::cout << "  " << spec.name << "  " << (kind && !kind->http ? "" : spec.method + " ")
              << redact_url(spec.url, UrlAudience::writer) << "  every "
              << seconds_text(spec.interval) << " s, timeout " << seconds_text(spec.timeout)
              << " s\n";
  }
  if (!alerting.empty())
    std::cout << "alerting: " << alerting.channels.size() << " channels, all valid\n";
  return 0;
}

// The API's way to the runner of this process: every call only queues a command.
class RunnerCommands final : public ServiceCommands {
 public:
  explicit RunnerCommands(Runner& runner) : runner_(runner) {}
  void service_changed(const Service& service) override { runner_.upsert_service(service); }
  void service_purged(ServiceId id) override { runner_.remove_service(id); }
  CommitFuture beat(ServiceId id, const BeatReport& beat) override {
    return runner_.record_beat(id, beat);
  }
  bool watches(ServiceId id) const override { return runner_.probes(id); }

 private:
  Runner& runner_;
};

int beat_command(const std::vector<std::string>& args) {
  BeatOptions options;
  try {
    options = parse_beat_arguments(args);
  } catch (const UsageError& e) {
    std::cerr << "vigil beat: " << e.what() << "\n"
              << "usage: vigil beat <push-url-or-token> [--fail] [--msg TEXT] [-- COMMAND...]\n";
    return kExitConfigError;
  }
  // A bare token is pushed to this machine's API, as .env and the environment configure it.
  Settings settings;
  const bool bare_token =
      !options.target.starts_with("http://") && !options.target.starts_with("https://");
  if (bare_token) settings = load_settings(merged_environment(read_dotenv(".env")));
  return run_beat(options, push_url(options.target, settings));
}

// Blocks SIGINT/SIGTERM in every thread (threads inherit the mask) so that only the main
// thread, in sigwait, receives them.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Every API connection, probe and database file holds a descriptor; the usual soft limit of
// 1024 would refuse them long before the hard limit does. Raised once, at start.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    log_warn("cannot raise the open-file limit above " + std::to_string(soft));
}

// The backend the settings choose: PostgreSQL at DATABASE_URL when it is set (load_settings has
// refused it beside DB_FILE), SQLite at DB_FILE otherwise. Throws StorageError.
std::unique_ptr<Database> open_database(const Settings& settings) {
  if (!settings.database_url.empty()) return open_postgres_database(settings.database_url);
  return open_sqlite_database(settings.db_file);
}

int serve(const Settings& settings, Modes modes) {
  const sigset_t stop_signals = block_stop_signals();
  raise_open_file_limit();
  // A file-size limit (RLIMIT_FSIZE) reached while writing would otherwise kill the process;
  // ignored, the write fails with EFBIG and the writer holds its ticks like on a full disk.
  ::signal(SIGXFSZ, SIG_IGN);

  std::optional<std::vector<ServiceSpec>> specs;
  std::optional<AlertingConfig> alerting;
  if (modes.runner) {
    specs = load_services_file(settings.services_file, settings);
    alerting = load_alerting_config(settings.services_file, alerting_environment());
    check_alert_routes(*alerting, *specs, settings.services_file);
  } else if (std::filesystem::exists(settings.services_file)) {
    // `vigil api`: the channels to check written services against and the file's maintenance
    // windows to list. The runner process is the one that must have them right.
    try {
      alerting = load_alerting_config(settings.services_file, alerting_environment());
    } catch (const ConfigError& e) {
      log_warn(std::string("alerting section not used by the API: ") + e.what());
    }
  }

  std::unique_ptr<Database> database;
  std::unique_ptr<Store> store;
  try {
    database = open_database(settings);
    store = database->open_store();
  } catch (const StorageError& e) {
    log_error(std::string("cannot open database: ") + e.what());
    return kExitStartupFailure;
  }

  // Liveness beats (api/health.h): written by the runner process, read by `vigil api`.
  std::unique_ptr<ComponentBeatStore> beats;
  try {
    beats = database->open_component_beats();
  } catch (const StorageError& e) {
    log_error(std::string("cannot open database: ") + e.what());
    return kExitStartupFailure;
  }

  prometheus::Registry registry;
  std::unique_ptr<Writer> writer;
  std::unique_ptr<Alerter> alerter;
  std::unique_ptr<AlertStore> alert_reads;  // the API's own connection to the alerts tables
  std::unique_ptr<Runner> runner;
  std::unique_ptr<RunnerCommands> commands;
  std::unique_ptr<ChangeFeed> feed;
  std::unique_ptr<RetentionCleaner> cleaner;
  std::unique_ptr<ApiServer> api;
  std::unique_ptr<ClusterStore> cluster_store;  // PostgreSQL only: null on SQLite
  std::unique_ptr<ClusterMember> member;
  std::unique_ptr<BeatRecorder> beat_recorder;  // destroyed first: it reads the parts above

  try {
    cluster_store = database->open_cluster_store(settings.cluster_lease);
  } catch (const StorageError& e) {
    log_error(std::string("cannot open database: ") + e.what());
    return kExitStartupFailure;
  }
  const MemberIdentity identity{
      .name = instance_name(settings, modes.api),
      .incarnation = new_incarnation(),
      .region = settings.region,
      .role = modes.runner ? (modes.api ? "run" : "runner") : "api",
      .address = modes.api ? settings.api_host + ":" + std::to_string(settings.api_port) : "",
      .version = VIGIL_VERSION,
      .takes_shards = modes.runner};
  const TimePoint started_at = now_ms();

  if (modes.runner) {
    const SyncResult sync = store->sync_services(*specs, now_ms());
    log_info("services file " + settings.services_file + ": " + std::to_string(specs->size()) +
             " services (" + std::to_string(sync.inserted.size()) + " new, " +
             std::to_string(sync.updated.size()) + " changed, " +
             std::to_string(sync.deactivated.size()) + " deactivated)");
    writer = std::make_unique<Writer>(*store, registry,
                                      WriterOptions{.max_queue = settings.storage_queue_max_ticks});
    RunnerOptions options;
    options.max_concurrency = settings.max_concurrency;
    options.region = settings.region;
    options.probe.source_ip = settings.source_ip;
    options.sharded = cluster_store != nullptr;
    Writer* sink = writer.get();
    // Alerting: status changes reach the Alerter's queue, never its I/O.
    try {
      // In a cluster the alerts of the services this member's runner watches are its own.
      AlerterOptions alerter_options;
      if (cluster_store) alerter_options.shards = [&runner] { return runner->shards(); };
      alerter = std::make_unique<Alerter>(database->open_alert_store(), *store, *alerting, registry,
                                          alerter_options);
    } catch (const StorageError& e) {
      log_error(std::string("cannot open alerts: ") + e.what());
      return kExitStartupFailure;
    }
    Alerter* alerts = alerter.get();
    runner = std::make_unique<Runner>(
        options,
        [sink, alerts](TickRecord record) {
          alerts->on_tick(record);
          sink->submit(std::move(record));
        },
        registry);
    commands = std::make_unique<RunnerCommands>(*runner);
  }

  if (modes.api) {
    ApiOptions api_options;
    api_options.write_token = settings.api_token;
    api_options.read_token = settings.api_read_token;
    api_options.status_page_title = settings.status_page_title;
    api_options.status_page_public = settings.status_page_public;
    api_options.service_defaults = settings;
    api_options.commands = commands.get();
    try {
      alert_reads = database->open_alert_store();
    } catch (const StorageError& e) {
      log_error(std::string("cannot open alerts: ") + e.what());
      return kExitStartupFailure;
    }
    api_options.alerts = alert_reads.get();
    api_options.alerter = alerter.get();
    if (runner) api_options.collectables.push_back(runner->service_series());
    api_options.alerting = alerting ? &*alerting : nullptr;
    api_options.health_silent_after = settings.health_silent_after;
    if (cluster_store) {
      api_options.cluster_members = [&cluster_store] { return cluster_store->members(); };
    } else {
      // SQLite: one process has the database; it is the whole cluster.
      api_options.cluster_members = [&identity, &runner, started_at] {
        MemberView self{.name = identity.name,
                        .region = identity.region,
                        .role = identity.role,
                        .address = identity.address,
                        .version = identity.version,
                        .started_at = started_at,
                        .live = true};
        if (runner) self.shards = runner->shards();  // every shard: the runner is not sharded
        return std::vector<MemberView>{self};
      };
    }
    // `vigil run` judges its own threads; `vigil api` the beats a runner process wrote.
    api = std::make_unique<ApiServer>(
        *store, registry,
        [&runner, &writer, &alerter, &beats, region = settings.region] {
          HealthReport report;
          if (runner) {
            for (auto& part : own_parts(runner.get(), writer.get(), alerter.get()))
              report.parts.push_back(PartProgress{part.part, region, part.progressed_at});
            report.storage_failure = writer->failure();
            return report;
          }
          for (auto& beat : beats->read())
            report.parts.push_back(PartProgress{beat.component, beat.instance, beat.beat_at});
          return report;
        },
        std::move(api_options));
    if (settings.api_token.empty())
      log_info("API_TOKEN is not set: API writes are accepted only from loopback clients");
    try {
      const int port = api->start(settings.api_host, settings.api_port);
      log_info("API listening on http://" + settings.api_host + ":" + std::to_string(port));
    } catch (const std::exception& e) {
      log_error(std::string("cannot start the API: ") + e.what());
      return kExitStartupFailure;
    }
  }

  if (cluster_store) {
    // Joined once here, so that a name another live process holds stops this one before it
    // probes anything; the member's thread renews from then on.
    try {
      try {
        cluster_store->renew(identity, settings.cluster_lease, "");
      } catch (const NameTaken& e) {
        // Restarted (a supervisor, a crash) before the lease of the process it replaces ran
        // out: when that process is gone from this host, take its place at once.
        if (!incarnation_is_dead(e.holder())) throw;
        log_info("cluster: taking over the name " + identity.name + " from a process gone (" +
                 e.holder() + ")");
        cluster_store->renew(identity, settings.cluster_lease, "", e.holder());
      }
    } catch (const NameTaken& e) {
      log_error(std::string("cluster: ") + e.what());
      return kExitStartupFailure;
    } catch (const StorageError& e) {
      log_error(std::string("cluster: cannot join: ") + e.what());
      return kExitStartupFailure;
    }
  }
  if (cluster_store && !modes.runner) {
    member = std::make_unique<ClusterMember>(*cluster_store, identity,
                                             ClusterMemberOptions{.lease = settings.cluster_lease},
                                             ClusterMemberHandlers{}, registry);
  }
  if (runner) {
    // The revision first: a change made while the services load is then seen again by the
    // feed (harmless) rather than missed.
    const std::int64_t revision = store->services_revision();
    auto services = store->active_services();
    const std::size_t count = services.size();
    alerter->start();
    runner->start(std::move(services), store->load_runtime());
    // Writes made by a `vigil api` process (and beats pushed to it) reach the runner from here.
    Runner* target = runner.get();
    feed = std::make_unique<ChangeFeed>(
        *store, revision, identity.name,
        ChangeFeedHandlers{
            [target](const Service& service) { target->upsert_service(service); },
            [target](ServiceId id) { target->remove_service(id); },
            [target](ServiceId id, const BeatReport& beat, std::int64_t queued) {
              return target->record_beat(id, beat, queued);
            },
            cluster_store ? std::function<std::vector<int>()>([target] { return target->shards(); })
                          : std::function<std::vector<int>()>()});
    if (cluster_store) {
      // Services are divided among the region's runners: none is probed until the member holds
      // its shards, and a shard that comes here starts from the state stored by its last owner.
      Store* reads = store.get();
      Writer* flushed = writer.get();
      member = std::make_unique<ClusterMember>(
          *cluster_store, identity, ClusterMemberOptions{.lease = settings.cluster_lease},
          ClusterMemberHandlers{
              .assign =
                  [target, reads](const std::vector<int>& shards, const std::vector<int>& gained,
                                  std::chrono::steady_clock::time_point valid_until) {
                    ShardAssignment assignment{.shards = shards, .valid_until = valid_until};
                    if (!gained.empty()) {
                      std::vector<bool> is_gained(kShardCount, false);
                      for (const int shard : gained) is_gained[std::size_t(shard)] = true;
                      for (const auto& [id, runtime] : reads->load_runtime())
                        if (is_gained[std::size_t(shard_of(id))])
                          assignment.runtime.emplace(id, runtime);
                    }
                    return target->assign_shards(std::move(assignment));
                  },
              .flush = [flushed] { flushed->flush(); },
              .taken = [a = alerter.get()](const std::vector<int>&) { a->reconcile_again(); }},
          registry);
    }
    cleaner = std::make_unique<RetentionCleaner>(
        *store, RetentionOptions{.retention = settings.tick_retention,
                                 .interval = settings.cleanup_interval,
                                 .minute_retention = settings.minute_retention,
                                 .hour_retention = settings.hour_retention});
    beat_recorder = std::make_unique<BeatRecorder>(
        *beats,
        [r = runner.get(), w = writer.get(), a = alerter.get()] { return own_parts(r, w, a); },
        BeatRecorderOptions{.instance = settings.region, .period = settings.health_beat_period});
    log_info("runner started: " + std::to_string(count) + " services, region " + settings.region +
             ", database " +
             (settings.database_url.empty() ? settings.db_file
                                            : redact_connection_string(settings.database_url)) +
             ", at most " + std::to_string(settings.max_concurrency) + " probes in flight");
  }

  if (member)
    log_info("cluster member " + identity.name + " (" + identity.role + ", region " +
             identity.region + "), lease " + seconds_text(settings.cluster_lease) + " s");

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  log_info(std::string("received ") + (signal_number == SIGINT ? "SIGINT" : "SIGTERM") +
           ", shutting down");

  // No new commands first (API, feed); then probes in flight finish so their ticks reach the
  // writer, which then flushes.
  if (api) api->stop();
  // A clean stop removes this process's beats: stopped on purpose is not silent.
  if (beat_recorder) beat_recorder->stop();
  if (feed) feed->stop();
  // No more rounds (they would hand shards to a runner that is stopping); the leases stay held
  // until leave() below.
  if (member) member->stop();
  if (runner) runner->stop();
  if (alerter) alerter->stop();
  if (cleaner) cleaner->stop();
  if (writer) writer->stop();
  // Last: every tick is written, so whoever takes the shards over reads their last state.
  if (member) member->leave();
  log_info("stopped cleanly");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "run";
  if (command == "help" || command == "--help" || command == "-h") {
    print_usage(std::cout);
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::cout << "vigil " << VIGIL_VERSION << "\n";
    return 0;
  }
  if (command == "probe") {  // one probe now, no database
    return probe_command(std::vector<std::string>(argv + 2, argv + argc), std::cout, std::cerr);
  }
  if (command == "migrate") {  // from the file and URL it is given, not from .env
    return migrate_command(std::vector<std::string>(argv + 2, argv + argc), std::cout, std::cerr);
  }
  if (command == "beat") {
    try {
      return beat_command(std::vector<std::string>(argv + 2, argv + argc));
    } catch (const vigil::ConfigError& e) {
      std::cerr << "vigil: configuration error: " << e.what() << "\n";
      return kExitConfigError;
    }
  }
  Modes modes;
  if (command == "run") {
    modes = {true, true};
  } else if (command == "runner") {
    modes = {true, false};
  } else if (command == "api") {
    modes = {false, true};
  } else if (command != "check-config") {
    std::cerr << "vigil: unknown command \"" << command << "\"\n";
    print_usage(std::cerr);
    return kExitConfigError;
  }
  if (argc > 2) {
    std::cerr << "vigil: unexpected argument \"" << argv[2] << "\"\n";
    return kExitConfigError;
  }

  try {
    const Settings settings = load_settings(merged_environment(read_dotenv(".env")));
    set_log_level(settings.log_level);
    if (command == "check-config") return check_config(settings);
    ensure_curl_global_init();  // before any thread starts
    return serve(settings, modes);
  } catch (const vigil::ConfigError& e) {
    std::cerr << "vigil: configuration error: " << e.what() << "\n";
    return kExitConfigError;
  } catch (const std::exception& e) {
    std::cerr << "vigil: " << e.what() << "\n";
    return kExitStartupFailure;
  }
}
