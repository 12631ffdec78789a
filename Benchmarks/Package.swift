// swift-tools-version:6.1
// Micro-benchmarks for Switchboard (ordo-one/benchmark, malloc counts through its interposer).
// A package of its own so that the root package's build and CI never fetch or build the
// benchmark dependency. Run: `scripts/benchmarks.sh` (or `swift package --package-path Benchmarks benchmark`).
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let benchmarkTargets = ["UserSigBenchmarks", "FrameBenchmarks", "SessionTableBenchmarks"]

let package = Package(
    name: "SwitchboardBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Switchboard", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: benchmarkTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "UserSig", package: "Switchboard"),
                .product(name: "SwitchboardProtocol", package: "Switchboard"),
                .product(name: "SwitchboardCore", package: "Switchboard"),
            ],
            path: "Benchmarks/\(name)",
            swiftSettings: swiftSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    }
)
