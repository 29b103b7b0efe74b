import FuzzDriver
import SluiceConfig
import SluiceOutbounds

// The configuration loader (libyaml, then the decoder with its diagnostics) on any text.
runFuzzer { input in
    _ = ConfigLoader.load(
        yaml: String(decoding: input, as: UTF8.self), fileName: "fuzz.yaml", catalog: OutboundRegistry.catalog)
}
