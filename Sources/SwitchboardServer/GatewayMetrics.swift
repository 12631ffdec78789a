import CoreMetrics
import Prometheus
import SwitchboardCluster
import SwitchboardCore
import SwitchboardProtocol
import Synchronization

/// One gateway's metrics, served on the admin port's `/metrics` in Prometheus text format.
///
/// The metrics are swift-metrics objects made by a `PrometheusMetricsFactory` over a registry
/// this gateway owns, rather than through `MetricsSystem.bootstrap`: bootstrap may happen only
/// once per process, and one process may run several servers (the test suites do). No label
/// names a user or a connection; `app` (an sdkAppID) is the only unbounded-looking one, and
/// apps are few.
///
/// Counters move on the event loops, from the gateway's hooks: each is an atomic add on an
/// object made once. Gauges describing the session table are read from the table at scrape
/// time, so they are exact however sessions end (reaped, kicked while detached, overflowed).
final class GatewayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    private let loginCounters: Mutex<[Int: CoreMetrics.Counter]>
    private let loginDuration: CoreMetrics.Timer
    private let kicksMultiDevice: CoreMetrics.Counter
    private let kicksAdmin: CoreMetrics.Counter
    private let resumesSucceeded: CoreMetrics.Counter
    private let resumesFailed: CoreMetrics.Counter
    private let messages: CoreMetrics.Counter
    private let webhookOK: CoreMetrics.Counter
    private let webhookFailed: CoreMetrics.Counter
    private let webhookTimedOut: CoreMetrics.Counter
    private let webhookDropped: CoreMetrics.Counter
    private let webhookQueued: CoreMetrics.Gauge
    private let connections: CoreMetrics.Gauge
    private let adminRequests: Mutex<[AdminRequestKey: CoreMetrics.Counter]>
    private let appGauges: Mutex<[UInt64: AppGauges]>
    /// In a cluster: each app's DAU as last read from the store.
    private let lastClusterDAU = Mutex<[UInt64: Int]>([:])

    /// Login check durations are tens of microseconds when all is well: buckets start there.
    static let loginDurationBuckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["switchboard_login_duration_seconds"] = Self.loginDurationBuckets
        self.factory = factory

        // Made up front (so they read 0 rather than being absent) where the label values are known.
        loginCounters = Mutex([0: CoreMetrics.Counter(label: "switchboard_logins_total", dimensions: [("code", "0")],
                                                      factory: factory)])
        loginDuration = CoreMetrics.Timer(label: "switchboard_login_duration_seconds", factory: factory)
        kicksMultiDevice = CoreMetrics.Counter(label: "switchboard_kicks_total", dimensions: [("reason", "multiDevice")],
                                               factory: factory)
        kicksAdmin = CoreMetrics.Counter(label: "switchboard_kicks_total", dimensions: [("reason", "admin")],
                                         factory: factory)
        resumesSucceeded = CoreMetrics.Counter(label: "switchboard_resumes_total", dimensions: [("result", "success")],
                                               factory: factory)
        resumesFailed = CoreMetrics.Counter(label: "switchboard_resumes_total", dimensions: [("result", "failure")],
                                            factory: factory)
        messages = CoreMetrics.Counter(label: "switchboard_messages_total", factory: factory)
        webhookOK = CoreMetrics.Counter(label: "switchboard_webhook_posts_total", dimensions: [("result", "ok")],
                                        factory: factory)
        webhookFailed = CoreMetrics.Counter(label: "switchboard_webhook_posts_total", dimensions: [("result", "failed")],
                                            factory: factory)
        webhookTimedOut = CoreMetrics.Counter(label: "switchboard_webhook_posts_total",
                                              dimensions: [("result", "timeout")], factory: factory)
        webhookDropped = CoreMetrics.Counter(label: "switchboard_webhook_dropped_total", factory: factory)
        webhookQueued = CoreMetrics.Gauge(label: "switchboard_webhook_queued", factory: factory)
        connections = CoreMetrics.Gauge(label: "switchboard_connections", factory: factory)
        adminRequests = Mutex([:])
        appGauges = Mutex([:])
    }

    // MARK: Events (event loops)

    func loginFinished(code: ErrorCode, nanoseconds: Int64) {
        let counter = loginCounters.withLock { counters in
            if let counter = counters[code.rawValue] { return counter }
            let counter = CoreMetrics.Counter(label: "switchboard_logins_total",
                                              dimensions: [("code", String(code.rawValue))], factory: factory)
            counters[code.rawValue] = counter
            return counter
        }
        counter.increment()
        loginDuration.recordNanoseconds(nanoseconds)
    }

    func kicked(multiDevice: Int = 0, admin: Int = 0) {
        if multiDevice > 0 { kicksMultiDevice.increment(by: multiDevice) }
        if admin > 0 { kicksAdmin.increment(by: admin) }
    }

    func resumeFinished(success: Bool) {
        (success ? resumesSucceeded : resumesFailed).increment()
    }

    func messageSent() { messages.increment() }

    func webhookPosted(_ outcome: StateWebhook.Outcome) {
        switch outcome {
        case .ok: webhookOK.increment()
        case .failed: webhookFailed.increment()
        case .timedOut: webhookTimedOut.increment()
        }
    }

    func webhookDropped(_ count: Int) {
        if count > 0 { webhookDropped.increment(by: count) }
    }

    /// An admin API request answered: by endpoint and `ErrorCode` (both from fixed sets).
    func adminRequest(endpoint: String, code: ErrorCode) {
        let key = AdminRequestKey(endpoint: endpoint, code: code.rawValue)
        let counter = adminRequests.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: "switchboard_admin_requests_total",
                                              dimensions: [("endpoint", endpoint), ("code", String(code.rawValue))],
                                              factory: factory)
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    // MARK: Scrape

    /// Refreshes the gauges from the gateway's present state, then renders every metric.
    func render(gateway: Gateway) -> [UInt8] {
        connections.record(gateway.connections)
        webhookQueued.record(gateway.webhook.queued)
        for app in gateway.apps.all {
            // A cluster node reports the sessions attached to it, and the cluster's DAU (one SCARD;
            // the admin port serves scrapes off the event loops in a cluster).
            let counts: SessionCounts
            if let cluster = gateway.cluster {
                var local = cluster.localCounts(app: app.sdkAppID)
                let dau = cluster.dau(app: app.sdkAppID)
                local.dau = lastClusterDAU.withLock { last in
                    if let dau { last[app.sdkAppID] = dau }
                    return last[app.sdkAppID] ?? 0  // the store away: the last count read
                }
                counts = local
            } else {
                counts = gateway.table.counts(app: app.sdkAppID)
            }
            let gauges = appGauges.withLock { gauges in
                if let existing = gauges[app.sdkAppID] { return existing }
                let made = AppGauges(app: app.sdkAppID, factory: factory)
                gauges[app.sdkAppID] = made
                return made
            }
            gauges.attached.record(counts.attached)
            gauges.detached.record(counts.detached)
            gauges.usersOnline.record(counts.usersOnline)
            gauges.dau.record(counts.dau)
        }
        var out: [UInt8] = []
        out.reserveCapacity(8192)
        registry.emit(into: &out)
        return out
    }
}

private struct AdminRequestKey: Hashable {
    let endpoint: String
    let code: Int
}

/// The per-app gauges.
private struct AppGauges: Sendable {
    let attached: CoreMetrics.Gauge
    let detached: CoreMetrics.Gauge
    let usersOnline: CoreMetrics.Gauge
    let dau: CoreMetrics.Gauge

    init(app: UInt64, factory: PrometheusMetricsFactory) {
        let id = String(app)
        attached = CoreMetrics.Gauge(label: "switchboard_sessions", dimensions: [("app", id), ("state", "attached")],
                                     factory: factory)
        detached = CoreMetrics.Gauge(label: "switchboard_sessions", dimensions: [("app", id), ("state", "detached")],
                                     factory: factory)
        usersOnline = CoreMetrics.Gauge(label: "switchboard_users_online", dimensions: [("app", id)], factory: factory)
        dau = CoreMetrics.Gauge(label: "switchboard_dau", dimensions: [("app", id)], factory: factory)
    }
}
