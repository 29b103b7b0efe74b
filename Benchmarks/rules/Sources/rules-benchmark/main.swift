// Rule engine benchmark.
//
// Generates a mihomo-style config of N rules (default 100,000: mostly DOMAIN-SUFFIX, many
// IP-CIDR/IP-CIDR6, some DOMAIN and DOMAIN-KEYWORD, a few DOMAIN-REGEX, SRC-IP-CIDR, DST-PORT
// and logical rules, MATCH last) in /tmp, then measures:
//   - load: YAML parse + decode (ConfigLoader), engine build (indexed and linear), JSON
//     round trip of the configuration (what sluiced pushes to the tun worker);
//   - memory: RSS growth over the loaded configuration and over each engine;
//   - decide(): p50/p99 per class of connection (early hits, late hits, IP hits, misses,
//     fake destinations resolved), indexed and linear, and checks that both decide alike.
// A second scenario loads the same kinds of entries from rule-provider files.
//
//   swift run -c release --package-path Benchmarks/rules rules-benchmark [--rules N] [--seed S]

import Foundation
import SluiceConfig
import SluiceNet
import SluiceOutbounds
import SluiceRules

// MARK: The tun worker's share

/// `--worker-memory FILE`: what the tun worker holds, measured in a fresh process: RSS after decoding the pushed
/// JSON and after building the engine from it.
func workerMemory(_ path: String) -> Never {
    let before = residentBytes()
    let data = FileManager.default.contents(atPath: path)!
    let configuration = try! JSONDecoder().decode(SluiceConfiguration.self, from: data)
    let decoded = residentBytes()
    let engine = RuleEngine(configuration: configuration)
    let built = residentBytes()
    // What stays once building's scratch is given back (glibc keeps freed pages until trimmed).
    typealias Trim = @convention(c) (Int) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
    let trimmed = residentBytes()
    print(
        "\(decoded - before) \(built - decoded) \(trimmed - before) \(engine.unsupportedKinds.count + configuration.rules.count)"
    )
    exit(0)
}

// MARK: Arguments

var ruleCount = 100_000
var seed: UInt64 = 0x51_1CE
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--rules": ruleCount = Int(arguments.popFirst() ?? "") ?? ruleCount
    case "--seed": seed = UInt64(arguments.popFirst() ?? "") ?? seed
    case "--worker-memory": workerMemory(arguments.popFirst() ?? "")
    default:
        print("usage: rules-benchmark [--rules N] [--seed S]")
        exit(2)
    }
}

// MARK: Helpers

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

var random = SplitMix64(state: seed)

func label(_ length: ClosedRange<Int> = 4...10) -> String {
    let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String(
        (0..<Int.random(in: length, using: &random)).map { _ in letters[Int.random(in: 0..<26, using: &random)] })
}

let tlds = ["com", "net", "org", "io", "cn", "jp", "de", "co.uk", "com.cn", "tv"]

func domain() -> String {
    (Int.random(in: 0..<4, using: &random) == 0 ? label() + "." : "") + label() + "." + tlds.randomElement(
        using: &random)!
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
func ms(_ s: Double) -> String { String(format: "%.0f ms", s * 1000) }

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func micros(_ nanoseconds: Double) -> String {
    nanoseconds >= 100_000
        ? String(format: "%.0f µs", nanoseconds / 1000) : String(format: "%.2f µs", nanoseconds / 1000)
}

// MARK: The config

struct Generated {
    var lines: [String] = []
    var suffixes: [(Int, String)] = []
    var exacts: [(Int, String)] = []
    var keywords: [(Int, String)] = []
    var cidrs: [(Int, IPPrefix)] = []
}

func generateRules(_ count: Int) -> Generated {
    var g = Generated()
    g.lines.reserveCapacity(count)
    for index in 0..<(count - 1) {
        let roll = Int.random(in: 0..<1000, using: &random)
        switch roll {
        case 0..<650:
            let name = domain()
            g.suffixes.append((index, name))
            g.lines.append("DOMAIN-SUFFIX,\(name),\(["Proxy", "DIRECT", "REJECT"][index % 3])")
        case 650..<700:
            let name = domain()
            g.exacts.append((index, name))
            g.lines.append("DOMAIN,\(name),Proxy")
        case 700..<900:
            // IPv4 prefixes outside 240.0.0.0/4, where the misses go.
            let length = [8, 12, 16, 16, 20, 22, 24, 24, 24, 28, 32].randomElement(using: &random)!
            let address = IPv4Address(rawValue: UInt32.random(in: 0..<0xF000_0000, using: &random))
            let prefix = IPPrefix(address: .v4(address), length: length)!.network
            g.cidrs.append((index, prefix))
            g.lines.append("IP-CIDR,\(prefix),DIRECT\(index % 4 == 0 ? "" : ",no-resolve")")
        case 900..<950:
            let length = [32, 36, 40, 48, 56, 64].randomElement(using: &random)!
            let address = IPv6Address(high: 0x2000_0000_0000_0000 | random.next() >> 4, low: 0)
            let prefix = IPPrefix(address: .v6(address), length: length)!.network
            g.cidrs.append((index, prefix))
            g.lines.append("IP-CIDR6,\(prefix),DIRECT,no-resolve")
        case 950..<975:
            let keyword = label(5...8)
            g.keywords.append((index, keyword))
            g.lines.append("DOMAIN-KEYWORD,\(keyword),REJECT")
        case 975..<985:
            let address = IPv4Address(rawValue: UInt32.random(in: 0..<0xF000_0000, using: &random))
            g.lines.append("SRC-IP-CIDR,\(IPPrefix(address: .v4(address), length: 32)!),DIRECT")
        case 985..<993:
            g.lines.append("DST-PORT,\(Int.random(in: 1024...60000, using: &random)),Proxy")
        case 993..<999:
            g.lines.append("AND,((NETWORK,udp),(DOMAIN-SUFFIX,\(domain()))),REJECT")
        default:
            // DOMAIN-REGEX: about one in a thousand (100 in 100,000).
            g.lines.append("DOMAIN-REGEX,^\(label(3...5))[0-9]+\\.\(label(4...6))\\.com$,REJECT")
        }
    }
    g.lines.append("MATCH,Proxy")
    return g
}

func configText(rules: [String], providers: String = "") -> String {
    var text = """
        mode: rule
        proxies:
          - {name: Proxy, type: socks5, server: 127.0.0.1, port: 1080}
        \(providers)
        rules:

        """
    text.reserveCapacity(rules.count * 40)
    for rule in rules { text += "  - \(rule)\n" }
    return text
}

let directory = "/tmp/sluice-rules-benchmark"
try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
let generated = generateRules(ruleCount)
let configPath = directory + "/config.yaml"
try configText(rules: generated.lines).write(toFile: configPath, atomically: true, encoding: .utf8)

// MARK: Load

print("# Rules benchmark: \(ruleCount) rules (seed \(seed))\n")
print(
    "config: \(configPath), \(generated.suffixes.count) DOMAIN-SUFFIX, \(generated.exacts.count) DOMAIN, "
        + "\(generated.cidrs.count) IP-CIDR/IP-CIDR6, \(generated.keywords.count) DOMAIN-KEYWORD, "
        + "\(generated.lines.filter { $0.hasPrefix("DOMAIN-REGEX") }.count) DOMAIN-REGEX, "
        + "\(generated.lines.filter { $0.hasPrefix("AND") }.count) AND, "
        + "\(generated.lines.filter { $0.hasPrefix("DST-PORT") || $0.hasPrefix("SRC-IP-CIDR") }.count) DST-PORT/SRC-IP-CIDR, MATCH\n"
)

let rssStart = residentBytes()
var result: ConfigLoadResult!
let loadTime = seconds { result = ConfigLoader.load(contentsOfFile: configPath, catalog: OutboundRegistry.catalog) }
guard let configuration = result.configuration else {
    print("config failed to load: \(result.errors.prefix(5))")
    exit(1)
}
let rssLoaded = residentBytes()
var indexed: RuleEngine!
let buildTime = seconds { indexed = RuleEngine(configuration: configuration) }
let rssIndexed = residentBytes()
var linear: RuleEngine!
let linearBuildTime = seconds { linear = RuleEngine(configuration: configuration, strategy: .linear) }
let rssLinear = residentBytes()
var pushed: SluiceConfiguration!
var pushedData = Data()
let jsonTime = seconds {
    pushedData = try! JSONEncoder().encode(configuration)
    pushed = try! JSONDecoder().decode(SluiceConfiguration.self, from: pushedData)
}
precondition(pushed.rules.count == configuration.rules.count)
let jsonBytes = pushedData.count
let jsonPath = directory + "/pushed.json"
try pushedData.write(to: URL(fileURLWithPath: jsonPath))
let worker = Process()
let pipe = Pipe()
worker.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
worker.arguments = ["--worker-memory", jsonPath]
worker.standardOutput = pipe
try worker.run()
worker.waitUntilExit()
let workerFields = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    .split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }

print("## Load\n")
print("| step | time |")
print("|---|---|")
print("| YAML parse + decode (`ConfigLoader.load`) | \(ms(loadTime)) |")
print("| indexed engine build | \(ms(buildTime)) |")
print("| **load total (parse + decode + indexed build)** | **\(ms(loadTime + buildTime))** |")
print("| linear engine build (reference) | \(ms(linearBuildTime)) |")
print("| JSON encode + decode of the configuration (config push, \(mib(jsonBytes))) | \(ms(jsonTime)) |")
print("")
print("## Memory (RSS growth)\n")
print("Measured in order in one process: pages malloc kept after freeing the YAML tree can serve the engines, so")
print("the engine rows are lower bounds and the first row includes that slack.\n")
print("| what | RSS |")
print("|---|---|")
print("| loaded configuration | \(mib(rssLoaded - rssStart)) |")
print("| indexed engine | \(mib(rssIndexed - rssLoaded)) |")
print("| linear engine (reference) | \(mib(rssLinear - rssIndexed)) |")
if workerFields.count >= 3 {
    print("| tun worker, fresh process: configuration decoded from the pushed JSON | \(mib(workerFields[0])) |")
    print("| tun worker, fresh process: indexed engine built from it (peak) | \(mib(workerFields[1])) |")
    print("| tun worker, fresh process: both, after `malloc_trim` (steady state) | \(mib(workerFields[2])) |")
}
print("")

// MARK: Connections

enum Kind: String, CaseIterable {
    case earlySuffix = "DOMAIN-SUFFIX hit in the first 1% of rules"
    case lateSuffix = "DOMAIN-SUFFIX hit in the last 10%"
    case exact = "DOMAIN hit"
    case keyword = "DOMAIN-KEYWORD hit"
    case ip = "IP-CIDR hit, no name"
    case miss = "miss (name and address match nothing: MATCH)"
    case fakeResolved = "miss on a fake address, name resolved at the first IP rule"
}

let earlySuffixes = generated.suffixes.filter { $0.0 < ruleCount / 100 }.map(\.1)
let lateSuffixes = generated.suffixes.filter { $0.0 > ruleCount * 9 / 10 }.map(\.1)
let exactNames = generated.exacts.map(\.1)
let keywordList = generated.keywords.map(\.1)
let cidrList = generated.cidrs.map(\.1)

func pick<T>(_ items: [T]) -> T { items.randomElement(using: &random)! }

func missHost() -> String { label() + "." + label() + ".invalid" }
func missAddress() -> IPAddress {
    .v4(IPv4Address(rawValue: 0xF000_0000 | UInt32.random(in: 0..<0x0FFF_FFFF, using: &random)))
}

func connection(_ kind: Kind) -> ConnectionMetadata {
    let source = IPAddress("192.168.1.23")!
    let port = UInt16([443, 80, 8443].randomElement(using: &random)!)
    func make(host: String?, destination: IPAddress, fake: Bool = false) -> ConnectionMetadata {
        ConnectionMetadata(
            network: .tcp, source: source, sourcePort: UInt16.random(in: 30000...60000, using: &random),
            destination: destination, destinationPort: port, host: host, destinationIsFake: fake)
    }
    switch kind {
    case .earlySuffix: return make(host: label() + "." + pick(earlySuffixes), destination: missAddress())
    case .lateSuffix: return make(host: label() + "." + pick(lateSuffixes), destination: missAddress())
    case .exact: return make(host: pick(exactNames), destination: missAddress())
    case .keyword:
        let keyword = pick(keywordList)
        return make(host: label(2...4) + keyword + label(1...3) + ".example", destination: missAddress())
    case .ip:
        let prefix = pick(cidrList)
        let address: IPAddress
        switch prefix.address {
        case .v4(let a):
            let hostBits =
                prefix.length == 32 ? 0 : UInt32.random(in: 0...(UInt32.max >> prefix.length), using: &random)
            address = .v4(IPv4Address(rawValue: a.rawValue | hostBits))
        case .v6(let a):
            address = .v6(IPv6Address(high: a.high, low: random.next()))
        }
        return make(host: nil, destination: address)
    case .miss: return make(host: missHost(), destination: missAddress())
    case .fakeResolved: return make(host: missHost(), destination: IPAddress("198.18.0.9")!, fake: true)
    }
}

let resolvedAddress = [IPAddress("240.1.2.3")!]

func measure(_ engine: RuleEngine, _ connections: [ConnectionMetadata], rounds: Int) -> [Double] {
    var samples: [Double] = []
    samples.reserveCapacity(connections.count * rounds)
    var sink = 0
    for _ in 0..<rounds {
        for m in connections {
            let start = ContinuousClock.now
            let decision = m.destinationIsFake ? engine.decide(m) { _ in resolvedAddress } : engine.decide(m)
            let elapsed = ContinuousClock.now - start
            sink &+= decision.rule.utf8.count
            samples.append(Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9)
        }
    }
    if sink == 42 { print("") }
    return samples.sorted()
}

print("## decide() latency\n")
print(
    "Per call, one thread, each connection class timed separately; indexed: 20,000 connections x 5 rounds, "
        + "linear: 300 connections x 1 round.\n")
print("| connections | indexed p50 | indexed p99 | linear p50 | linear p99 | linear / indexed (p50) |")
print("|---|---|---|---|---|---|")
var mismatches = 0
var allIndexed: [Double] = []
var allLinear: [Double] = []
for kind in Kind.allCases {
    let connections = (0..<20_000).map { _ in connection(kind) }
    let sample = Array(connections.prefix(300))
    for m in sample {
        let a = m.destinationIsFake ? indexed.decide(m) { _ in resolvedAddress } : indexed.decide(m)
        let b = m.destinationIsFake ? linear.decide(m) { _ in resolvedAddress } : linear.decide(m)
        if a != b { mismatches += 1 }
    }
    _ = measure(indexed, Array(connections.prefix(2_000)), rounds: 1)  // warm up
    let fast = measure(indexed, connections, rounds: 5)
    let slow = measure(linear, sample, rounds: 1)
    allIndexed += fast
    allLinear += slow
    let ratio = percentile(slow, 0.5) / max(percentile(fast, 0.5), 1)
    print(
        "| \(kind.rawValue) | \(micros(percentile(fast, 0.5))) | \(micros(percentile(fast, 0.99))) | "
            + "\(micros(percentile(slow, 0.5))) | \(micros(percentile(slow, 0.99))) | \(String(format: "%.0f×", ratio)) |"
    )
}
allIndexed.sort()
allLinear.sort()
print(
    "| **all classes** | **\(micros(percentile(allIndexed, 0.5)))** | **\(micros(percentile(allIndexed, 0.99)))** | "
        + "\(micros(percentile(allLinear, 0.5))) | \(micros(percentile(allLinear, 0.99))) | "
        + "\(String(format: "%.0f×", percentile(allLinear, 0.5) / percentile(allIndexed, 0.5))) |")
print("\nindexed and linear decisions compared on \(Kind.allCases.count * 300) connections: \(mismatches) differ")

// MARK: Providers

// The same kinds of entries, this time from rule-provider files: what large downloaded lists look like.
let domainEntries = generated.suffixes.map { "+." + $0.1 } + generated.exacts.map(\.1)
let cidrEntries = generated.cidrs.map { "\($0.1)" }
try ("# generated\n" + domainEntries.joined(separator: "\n") + "\n")
    .write(toFile: directory + "/domains.txt", atomically: true, encoding: .utf8)
try ("payload:\n" + cidrEntries.map { "  - '\($0)'" }.joined(separator: "\n") + "\n")
    .write(toFile: directory + "/cidrs.yaml", atomically: true, encoding: .utf8)
let providerConfig = directory + "/providers.yaml"
try configText(
    rules: ["RULE-SET,domains,Proxy", "RULE-SET,cidrs,DIRECT,no-resolve", "MATCH,Proxy"],
    providers: """
        rule-providers:
          domains: {type: file, behavior: domain, format: text, path: domains.txt}
          cidrs: {type: file, behavior: ipcidr, format: yaml, path: cidrs.yaml}
        """
).write(toFile: providerConfig, atomically: true, encoding: .utf8)
var providerResult: ConfigLoadResult!
let providerLoad = seconds {
    providerResult = ConfigLoader.load(contentsOfFile: providerConfig, catalog: OutboundRegistry.catalog)
}
guard let providerConfiguration = providerResult.configuration else {
    print("provider config failed: \(providerResult.errors.prefix(5))")
    exit(1)
}
var providerEngine: RuleEngine!
let providerBuild = seconds { providerEngine = RuleEngine(configuration: providerConfiguration) }
let providerConnections = (0..<20_000).map { i in connection([Kind.lateSuffix, .ip, .miss][i % 3]) }
let providerSamples = measure(providerEngine, providerConnections, rounds: 5)
print("\n## Rule providers\n")
print(
    "\(domainEntries.count) domain entries (text file) and \(cidrEntries.count) prefixes (YAML file) behind two "
        + "RULE-SET rules.\n")
print("| load (parse + decode + read providers) | build | decide p50 | decide p99 |")
print("|---|---|---|---|")
print(
    "| \(ms(providerLoad)) | \(ms(providerBuild)) | \(micros(percentile(providerSamples, 0.5))) | "
        + "\(micros(percentile(providerSamples, 0.99))) |")
