// SessionTable login + logout of distinct users on one shared table, from 1, 2 and 8 threads.
//
// One benchmark iteration is 1,000 login+logout pairs in all (scalingFactor .kilo), split evenly
// over the threads, so throughput reads as login+logout pairs per second for the whole table and
// malloc counts as mallocs per pair. The threads are started once per benchmark (in setup) and
// woken for each iteration; their users are their own ("t3u517"), 1,024 each, taken in turn, so a
// login never finds another session of its user and nothing is kicked.
import Benchmark
import Dispatch
import Foundation
import SwitchboardCore
import SwitchboardProtocol
import UserSig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connection that drops whatever the table hands it (no kick or event happens here anyway).
final class NoopSink: SessionSink {
    func deliver(_ delivery: SessionDelivery) {}
}

/// One thread's share: login then logout of its own users, in turn.
final class TableWorker: @unchecked Sendable {
    private let table: SessionTable
    private let app: AppConfiguration
    private let ticket: UserSigTicket
    private let connection: ConnectionRef
    private let users: [String]
    private let pairsPerRun: Int
    private var next = 0  // touched only by this worker's thread

    init(index: Int, table: SessionTable, app: AppConfiguration, ticket: UserSigTicket, pairsPerRun: Int) {
        self.table = table
        self.app = app
        self.ticket = ticket
        self.connection = ConnectionRef(id: UInt64(index + 1), sink: NoopSink())
        self.users = (0..<1024).map { "t\(index)u\($0)" }
        self.pairsPerRun = pairsPerRun
    }

    func run() {
        for _ in 0..<pairsPerRun {
            let user = users[next]
            next = (next + 1) & (users.count - 1)
            guard case .success(let info, let kicked) = table.login(app: app, userID: user, platform: .web,
                                                                     ticket: ticket, connection: connection),
                  kicked.isEmpty
            else { fatalError("login of \(user) failed") }
            guard table.logout(sessionID: info.sessionID, connectionID: connection.id) else {
                fatalError("logout of \(user) failed")
            }
        }
    }
}

/// Long-lived threads, one per worker, each woken by its own semaphore for one run.
final class WorkerPool: @unchecked Sendable {
    private let workers: [TableWorker]
    private let starts: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)
    private var stopping = false  // written before the wake-up that makes a thread read it

    init(_ workers: [TableWorker]) {
        self.workers = workers
        self.starts = workers.map { _ in DispatchSemaphore(value: 0) }
        for index in workers.indices {
            let thread = Thread { [self] in
                while true {
                    starts[index].wait()
                    if stopping { break }
                    self.workers[index].run()
                    finished.signal()
                }
                finished.signal()
            }
            thread.name = "table-worker-\(index)"
            thread.start()
        }
    }

    /// One iteration: every worker runs its share; returns when all have.
    func runOnce() {
        for start in starts { start.signal() }
        for _ in starts { finished.wait() }
    }

    func stop() {
        stopping = true
        for start in starts { start.signal() }
        for _ in starts { finished.wait() }
    }
}

/// The setup state of one benchmark: a fresh table and its threads.
final class Fixture: @unchecked Sendable {
    let table: SessionTable
    let pool: WorkerPool

    init(threads: Int, pairsPerIteration: Int) {
        let table = SessionTable()  // defaults: 64 shards, 120 s resume window, system clock
        let app = AppConfiguration(sdkAppID: 1_400_000_000, secretKey: "benchmark")  // policy dual
        let now = SystemClock().nowMillis() / 1000
        // login takes a verified ticket (the caller checks the UserSig): made once, shared.
        let ticket = UserSigTicket(identifier: "", sdkAppID: app.sdkAppID, time: now, expire: 180 * 86_400)
        let workers = (0..<threads).map {
            TableWorker(index: $0, table: table, app: app, ticket: ticket, pairsPerRun: pairsPerIteration / threads)
        }
        self.table = table
        self.pool = WorkerPool(workers)
    }
}

/// Setup's result reaches teardown through this box (teardown takes no argument).
final class FixtureBox: @unchecked Sendable {
    var fixture: Fixture?
}

/// CPU time of the whole process (all threads) per login+logout pair. The built-in cpuTotal
/// metric moves in 10 ms steps here, too coarse for one iteration (a few ms); this reads
/// CLOCK_PROCESS_CPUTIME_ID in nanoseconds, and is divided by the scaling factor like the rest.
let processCPU = BenchmarkMetric.custom("Process CPU (ns)", polarity: .prefersSmaller, useScalingFactor: true)

func processCPUNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, processCPU, .mallocCountTotal, .mallocBytesCount],
        timeUnits: .nanoseconds,
        units: [.mallocBytesCount: .count, processCPU: .count],  // exact figures, no K/M rounding
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )

    for threads in [1, 2, 8] {
        let box = FixtureBox()
        let name = "SessionTable login+logout, \(threads) thread\(threads == 1 ? "" : "s")"
        Benchmark(name) { (benchmark: Benchmark, fixture: Fixture) in
            let cpuBefore = processCPUNanoseconds()
            fixture.pool.runOnce()
            benchmark.measurement(processCPU, Int(processCPUNanoseconds() - cpuBefore))
        } setup: {
            let fixture = Fixture(threads: threads, pairsPerIteration: 1_000)
            box.fixture = fixture
            return fixture
        } teardown: {
            box.fixture?.pool.stop()
            box.fixture = nil
        }
    }
}
