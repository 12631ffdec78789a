import Foundation
import Histogram
import NIOCore
import NIOPosix

/// What one worker process hands its parent (`--worker-output`): its latency histogram, errors,
/// and how many of its connections were logged in (or upgraded) and how long that took.
struct WorkerReport: Codable {
    var histogram: Histogram<UInt64>
    var errors: [Int: Int]
    var opened: Int
    var seconds: Double
}

/// Written by a worker once its connections are open; atomically, so a parent polling for the
/// file never reads half of it.
func writeWorkerReport(_ recorder: Recorder, opened: Int, seconds: Double, to path: String) throws {
    let report = WorkerReport(histogram: recorder.histogram, errors: recorder.errors, opened: opened, seconds: seconds)
    try JSONEncoder().encode(report).write(to: URL(fileURLWithPath: path), options: .atomic)
}

/// Past one process's open-file limit: `--workers K` runs K copies of this tool, worker k on
/// source address 127.0.0.(k+2) with its share of the connections, and merges their histograms.
struct WorkerPool {
    let processes: [Process]
    let outputs: [String]
    let directory: URL

    /// Starts the workers of `scenario` (connect or hold) with their share of `target.connections`.
    static func start(scenario: String, target: TargetOptions, extra: [String]) throws -> WorkerPool {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchboard-loadtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var processes: [Process] = []
        var outputs: [String] = []
        for k in 0..<target.workers {
            let share = target.connections / target.workers + (k < target.connections % target.workers ? 1 : 0)
            guard share > 0 else { continue }
            let output = directory.appendingPathComponent("worker-\(k).json").path
            var arguments = [scenario, "--host", target.host, "--port", String(target.port),
                             "--sdkappid", String(target.sdkappid), "--key", target.key,
                             "--connections", String(share),
                             "--concurrency", String(max(1, target.concurrency / target.workers)),
                             "--source-addresses", "127.0.0.\(k + 2)", "--platform", target.platform,
                             "--user-prefix", "\(target.userPrefix)w\(k)-", "--timeout", String(target.timeout),
                             "--worker-output", output]
            if target.noLogin { arguments.append("--no-login") }
            if !target.alsoPorts.isEmpty { arguments += ["--also-ports", target.alsoPorts] }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments + extra
            try process.run()
            processes.append(process)
            outputs.append(output)
        }
        return WorkerPool(processes: processes, outputs: outputs, directory: directory)
    }

    /// Waits (bounded) until every worker has written its report, with a progress line; then
    /// merges them.
    func collect(timeout: Double, recorder: Recorder) async -> (opened: Int, seconds: Double, reported: Int) {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .seconds(timeout + 30)
        var reports: [Int: WorkerReport] = [:]
        while reports.count < outputs.count, clock.now < deadline {
            for (k, output) in outputs.enumerated() where reports[k] == nil {
                if let data = FileManager.default.contents(atPath: output),
                   let report = try? JSONDecoder().decode(WorkerReport.self, from: data) {
                    reports[k] = report
                } else if !processes[k].isRunning {
                    reports[k] = WorkerReport(histogram: Histogram(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three),
                                              errors: [-5: 1], opened: 0, seconds: 0)  // -5: a worker died without a report
                }
            }
            FileHandle.standardError.write(Data(String(format: "\r%6.1fs  workers reported %d of %d   ",
                                                      (clock.now - start).seconds, reports.count, outputs.count).utf8))
            try? await Task.sleep(for: .milliseconds(200))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        var opened = 0
        var seconds = 0.0
        for report in reports.values {
            recorder.merge(report.histogram, errors: report.errors)
            opened += report.opened
            seconds = max(seconds, report.seconds)
        }
        return (opened, seconds, reports.count)
    }

    /// Waits (bounded) for the workers to exit, then removes their files.
    func finish(timeout: Double) async {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while processes.contains(where: \.isRunning), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        for process in processes where process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: directory)
    }
}
