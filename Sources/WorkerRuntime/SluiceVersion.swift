/// The suite's version, shared by every executable (`--version`) and the IPC hello.
public enum SluiceVersion {
    public static let string = "0.1.0"

    /// `sluiced 0.1.0 (IPC protocol 1)`.
    public static func banner(_ program: String) -> String { "\(program) \(string) (IPC protocol 1)" }
}
