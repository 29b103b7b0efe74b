// swift-tools-version:6.1
// Rule engine benchmark: load time, memory and decide() latency for a 100,000-rule config.
// Run from the repository root: swift run -c release --package-path Benchmarks/rules rules-benchmark
import PackageDescription

let package = Package(
    name: "sluice-rules-benchmark",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "sluice", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "rules-benchmark",
            dependencies: [
                .product(name: "SluiceNet", package: "sluice"),
                .product(name: "SluiceConfig", package: "sluice"),
                .product(name: "SluiceOutbounds", package: "sluice"),
                .product(name: "SluiceRules", package: "sluice"),
            ]
        )
    ],
    swiftLanguageModes: [.v5]  // a top-level script with global state
)
