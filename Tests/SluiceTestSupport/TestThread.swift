#if canImport(Glibc)
import Glibc
#endif

/// A joinable OS thread for tests that need a concurrent peer or a background reader.
public final class TestThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: () -> Void

    public init(_ body: @escaping () -> Void) { self.body = body }

    public func start() {
        let box = Unmanaged.passRetained(self)
        pthread_create(
            &handle, nil,
            { raw in
                let thread = Unmanaged<TestThread>.fromOpaque(raw!).takeRetainedValue()
                thread.body()
                return nil
            }, box.toOpaque())
    }

    public func join() { pthread_join(handle, nil) }
}
