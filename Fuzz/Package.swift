// swift-tools-version:6.1
// Coverage-guided fuzz targets (libFuzzer + AddressSanitizer) for everything sluice parses from the network,
// its peers and its users. Build and run them with Scripts/fuzz.sh, which compiles with
// -sanitize=address -sanitize-coverage=... and links libFuzzer's driver (FuzzDriver).
import PackageDescription

func target(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name, dependencies: ["FuzzDriver"] + products.map { .product(name: $0, package: "sluice") },
        swiftSettings: [.swiftLanguageMode(.v5)])
}

let package = Package(
    name: "sluice-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "sluice", path: "..")
    ],
    targets: [
        .target(name: "FuzzDriver", swiftSettings: [.swiftLanguageMode(.v5)]),
        target("fuzz-ipc-frame", ["IPC"]),
        target("fuzz-dns-message", ["SluiceDNSWire"]),
        target("fuzz-packet", ["SluicePacket", "SluiceNet"]),
        target("fuzz-config", ["SluiceConfig", "SluiceOutbounds"]),
        target("fuzz-proxy-replies", ["SluiceOutbounds", "SluiceNet"]),
        target("fuzz-sniffer", ["SluiceSniffing"]),
        target("fuzz-local-proxy", ["SluiceInbounds", "SluiceOutbounds", "SluiceNet"]),
    ]
)
