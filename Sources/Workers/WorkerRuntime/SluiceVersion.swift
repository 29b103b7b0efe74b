import IPC

/// The suite's version, shared by every executable (`--version`) and the IPC hello.
package enum SluiceVersion {
    package static let string = "0.1.0"

    /// `sluiced 0.1.0 (IPC protocol 3, speaks 1-3)`: the versions the frame codec itself uses.
    package static func banner(_ program: String) -> String {
        "\(program) \(string) (IPC protocol \(FrameHeader.currentVersion), speaks \(FrameHeader.minimumVersion)-\(FrameHeader.currentVersion))"
    }
}
