// swift-tools-version:6.1
// sluice: a Linux TUN-mode transparent proxy and split-routing suite.
// The layout follows the design card: one executable per process, shared code in
// library targets named for what they hold, C only where Swift cannot reach.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluiced", targets: ["supervisor"]),
        .executable(name: "sluice-tun-worker", targets: ["tun-worker"]),
        .executable(name: "sluice-dns-worker", targets: ["dns-worker"]),
        .executable(name: "sluice-keepalive", targets: ["keepalive"]),
        // For the benchmark packages under Benchmarks/ (a path dependency sees only products).
        .library(name: "SluiceNet", targets: ["SluiceNet"]),
        .library(name: "SluiceConfig", targets: ["SluiceConfig"]),
        .library(name: "SluiceRules", targets: ["SluiceRules"]),
        // For the fuzz targets under Fuzz/. Only products have `public` declarations; targets share with `package`.
        .library(name: "IPC", targets: ["IPC"]),
        .library(name: "SluiceDNSWire", targets: ["SluiceDNSWire"]),
        .library(name: "SluiceTLS", targets: ["SluiceTLS"]),  // in SluiceOutbounds' API (the TLS layer)
        .library(name: "SluicePacket", targets: ["SluicePacket"]),
        .library(name: "SluiceOutbounds", targets: ["SluiceOutbounds"]),
        .library(name: "SluiceInbounds", targets: ["SluiceInbounds"]),
        .library(name: "SluiceSniffing", targets: ["SluiceSniffing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: C
        .systemLibrary(
            name: "CSystemd",
            path: "Sources/C/CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .systemLibrary(
            name: "CYAML",
            path: "Sources/C/CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/C/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CSluice",
            path: "Sources/C/CSluice",
            cSettings: [.define("_GNU_SOURCE")]
        ),

        // MARK: Libraries
        .target(
            name: "SluiceSystem",
            dependencies: ["CSluice", "SluiceNet"],
            path: "Sources/Core/SluiceSystem",
            swiftSettings: strict
        ),
        .target(
            name: "IPC",
            dependencies: ["SluiceSystem", "SluiceNet"],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceNet",
            path: "Sources/Core/SluiceNet",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceNetlink",
            dependencies: ["SluiceNet", "SluiceSystem", "CSluice"],
            path: "Sources/Core/SluiceNetlink",
            swiftSettings: strict
        ),
        .target(
            name: "SluicePacket",
            dependencies: ["SluiceNet"],
            path: "Sources/Codecs/SluicePacket",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceDNSWire",
            dependencies: ["SluiceNet"],
            path: "Sources/Codecs/SluiceDNSWire",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceTLS",
            dependencies: ["COpenSSL", "SluiceNet"],
            path: "Sources/Codecs/SluiceTLS",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceConfig",
            dependencies: ["CYAML", "SluiceNet"],
            path: "Sources/Core/SluiceConfig",
            swiftSettings: strict
        ),
        // MARK: Policy: the flow router (rules, groups, health checks, sniff policy) above the outbounds
        .target(
            name: "SluiceRouting",
            dependencies: [
                "SluiceConfig", "SluiceNet", "SluiceRules", "SluiceOutbounds", "SluiceInbounds", "SluiceSniffing",
                "SluiceSystem", "IPC", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Policy/SluiceRouting",
            swiftSettings: strict
        ),
        // MARK: Outbounds and inbounds: a folder per protocol (wire codec, sans-I/O, beside its adapter)
        .target(
            name: "SluiceOutbounds",
            dependencies: [
                "SluiceNet", "SluiceConfig", "SluiceSystem", "SluiceTLS", "CSluice",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Outbounds",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceInbounds",
            dependencies: ["SluiceNet", "SluiceOutbounds"],
            path: "Sources/Inbounds",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceSniffing",
            path: "Sources/Codecs/SluiceSniffing",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceRules",
            dependencies: ["SluiceConfig", "SluiceNet"],
            path: "Sources/Policy/SluiceRules",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceTun",
            dependencies: [
                "SluicePacket", "SluiceNetlink", "SluiceRules", "SluiceConfig", "SluiceNet", "SluiceSystem", "IPC",
                "SluiceOutbounds", "SluiceInbounds", "SluiceSniffing", "SluiceRouting",
                "WorkerRuntime", "CSluice",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Workers/SluiceTun",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceDNS",
            dependencies: [
                "IPC", "SluiceConfig", "SluiceDNSWire", "SluiceNet", "SluiceSystem", "WorkerRuntime", "CSluice",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Workers/SluiceDNS",
            swiftSettings: strict
        ),
        .target(
            name: "SluiceWireGuard",
            dependencies: [
                "IPC", "SluiceConfig", "SluiceNet", "SluiceNetlink", "SluiceSystem", "WorkerRuntime", "CSluice",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Workers/SluiceWireGuard",
            swiftSettings: strict
        ),
        .target(
            name: "WorkerRuntime",
            dependencies: [
                "IPC", "SluiceSystem", "SluiceConfig", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Workers/WorkerRuntime",
            swiftSettings: strict
        ),

        .target(
            name: "ExternalController",
            dependencies: [
                "IPC", "SluiceConfig", "SluiceDNSWire", "SluiceNet", "SluiceSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Control/ExternalController",
            swiftSettings: strict
        ),
        .target(
            name: "Supervision",
            dependencies: [
                "IPC", "SluiceSystem", "SluiceConfig", "WorkerRuntime", "CSystemd", "ExternalController",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Control/Supervision",
            swiftSettings: strict
        ),

        // MARK: Executables (thin mains)
        .executableTarget(
            name: "supervisor",
            dependencies: [
                "Supervision", "WorkerRuntime", "SluiceConfig", "SluiceOutbounds", "IPC", "SluiceSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tun-worker",
            dependencies: [
                "WorkerRuntime", "SluiceTun",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "dns-worker",
            dependencies: [
                "WorkerRuntime", "SluiceDNS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "keepalive",
            dependencies: [
                "WorkerRuntime", "SluiceWireGuard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // MARK: Tests
        .target(
            name: "SluiceTestSupport",
            dependencies: ["IPC", "SluiceSystem", "Supervision", .product(name: "Logging", package: "swift-log")],
            path: "Tests/SluiceTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "IPCTests", dependencies: ["IPC", "SluiceSystem", "SluiceNet", "SluiceTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SluiceSystemTests", dependencies: ["SluiceSystem", "SluiceTestSupport"], swiftSettings: strict),
        .testTarget(name: "SluiceNetTests", dependencies: ["SluiceNet", "SluiceTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SupervisionTests",
            dependencies: ["Supervision", "IPC", "SluiceSystem", "SluiceConfig", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceNetlinkTests",
            dependencies: ["SluiceNetlink", "SluiceNet", "SluiceSystem", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluicePacketTests",
            dependencies: ["SluicePacket", "SluiceNet", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ExternalControllerTests",
            dependencies: [
                "ExternalController", "IPC", "SluiceConfig", "SluiceSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Everything that starts sluiced or builds a lab of namespaces (root; skipped with a reason otherwise).
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["SluiceTestSupport", "Supervision", "SluiceSystem", "IPC"],
            path: "Tests/Integration",
            swiftSettings: strict
        ),
        .testTarget(
            name: "WorkerRuntimeTests", dependencies: ["WorkerRuntime", "SluiceTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SluiceDNSWireTests", dependencies: ["SluiceDNSWire", "SluiceNet", "SluiceTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SluiceRoutingTests",
            dependencies: [
                "SluiceRouting", "SluiceConfig", "SluiceOutbounds", "SluiceRules", "SluiceNet", "SluiceSystem",
                "SluiceSniffing",
                "SluiceTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceTunTests",
            dependencies: [
                "SluiceTun", "SluiceConfig", "SluiceOutbounds", "SluiceNet", "SluiceSystem", "IPC", "WorkerRuntime",
                "SluiceTestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceOutboundsTests",
            dependencies: ["SluiceOutbounds", "SluiceConfig", "SluiceTLS", "SluiceNet", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceInboundsTests",
            dependencies: ["SluiceInbounds", "SluiceOutbounds", "SluiceNet", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceSniffingTests",
            dependencies: ["SluiceSniffing", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceRulesTests",
            dependencies: ["SluiceRules", "SluiceConfig", "SluiceOutbounds", "SluiceNet", "SluiceTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceDNSTests",
            dependencies: [
                "SluiceDNS", "SluiceDNSWire", "SluiceConfig", "SluiceNet", "SluiceSystem", "IPC", "SluiceTestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceWireGuardTests",
            dependencies: [
                "SluiceWireGuard", "SluiceConfig", "SluiceOutbounds", "SluiceNet", "SluiceNetlink", "SluiceTestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceConfigTests", dependencies: ["SluiceConfig", "SluiceOutbounds", "SluiceTestSupport"],
            exclude: ["Corpus"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
