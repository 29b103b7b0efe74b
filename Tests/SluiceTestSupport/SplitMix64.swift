/// A tiny deterministic PRNG (SplitMix64) so randomized tests replay exactly from a seed.
///
/// Tests print the seed in their failure messages; rerun with the same seed to reproduce.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes.
    package mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }

    /// A random printable-or-not Unicode string of up to `maxLength` scalars.
    package mutating func string(maxLength: Int) -> String {
        let length = Int.random(in: 0...maxLength, using: &self)
        var scalars = String.UnicodeScalarView()
        for _ in 0..<length {
            let pick = Int.random(in: 0..<4, using: &self)
            let value: UInt32 =
                switch pick {
                case 0: UInt32.random(in: 0x20...0x7E, using: &self)
                case 1: UInt32.random(in: 0xA0...0x7FF, using: &self)
                case 2: UInt32.random(in: 0x4E00...0x9FFF, using: &self)
                default: UInt32.random(in: 0x1F300...0x1F6FF, using: &self)
                }
            scalars.append(Unicode.Scalar(value)!)
        }
        return String(scalars)
    }
}
