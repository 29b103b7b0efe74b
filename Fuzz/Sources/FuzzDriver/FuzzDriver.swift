#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's driver (`LLVMFuzzerRunDriver` from libclang_rt.fuzzer_no_main, linked by Scripts/fuzz.sh): the
/// targets are ordinary executables whose main hands libFuzzer one closure; its command line is libFuzzer's.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The body of the running target (one per process, set once before the driver starts).
nonisolated(unsafe) private var body: ((UnsafeRawBufferPointer) -> Void)?

/// Runs libFuzzer with `target` as the function under test, then exits with libFuzzer's status (non-zero when
/// an input crashed the target or tripped AddressSanitizer).
public func runFuzzer(_ target: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    body = target
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        body?(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
    exit(status)
}
