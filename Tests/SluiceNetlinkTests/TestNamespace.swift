import Foundation
import SluiceNetlink
import SluiceTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Whether the integration tests can run: they create network namespaces and veth pairs.
let runningAsRoot = geteuid() == 0

/// A failed `ip` invocation in a test.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

/// A throwaway network namespace for one test, named `sln-<pid>-<n>` so parallel tests and parallel test runs do
/// not collide. Create it with ``withTestNamespace(_:)``, which deletes it however the test ends.
final class TestNamespace: Sendable {
    private static let counter = Atomic<Int>(0)

    let name: String

    fileprivate init() throws {
        let serial = Self.counter.add(1, ordering: .relaxed).newValue
        name = "sln-\(getpid())-\(serial)"
        try Self.run(["netns", "add", name])
        try ip("link set lo up")
    }

    fileprivate func remove() {
        _ = try? Self.run(["netns", "del", name])
    }

    /// Runs `ip -n NAME ARGS...` (arguments split on spaces) and returns its standard output.
    @discardableResult
    func ip(_ arguments: String) throws -> String {
        try Self.run(["-n", name] + arguments.split(separator: " ").map(String.init))
    }

    /// Runs `ip -n NAME -j ARGS...` and parses the JSON array it prints.
    func json(_ arguments: String) throws -> [[String: Any]] {
        let text = try Self.run(["-n", name, "-j"] + arguments.split(separator: " ").map(String.init))
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
        guard let array = parsed as? [[String: Any]] else {
            throw CommandFailure(description: "ip -j \(arguments): not a JSON array: \(text)")
        }
        return array
    }

    /// Runs `body` on a thread inside this namespace.
    func run<T: Sendable>(_ body: @Sendable () throws -> T) throws -> T {
        try NetworkNamespace.run(in: name, body)
    }

    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        // Arguments are plain words (names, addresses, options): quote them for the shell.
        let command =
            "ip " + arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let (status, output) = Shell.run(command)
        guard status == 0 else {
            throw CommandFailure(description: "\(command) exited \(status): \(output)")
        }
        return output
    }
}

/// Creates a namespace, runs `body` with it, and deletes the namespace even when `body` throws.
func withTestNamespace<T>(_ body: (TestNamespace) throws -> T) throws -> T {
    let namespace = try TestNamespace()
    defer { namespace.remove() }
    return try body(namespace)
}

/// The index of interface `name` as `ip -j link` reports it.
func interfaceIndex(_ name: String, in namespace: TestNamespace) throws -> Int32 {
    guard let entry = try namespace.json("link show dev \(name)").first, let index = entry["ifindex"] as? Int else {
        throw CommandFailure(description: "no ifindex for \(name)")
    }
    return Int32(index)
}
