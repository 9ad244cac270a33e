//! A kernel for WIT 0.2.0, which this host does not support.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "ml-kernel" });

    struct Future;

    impl exports::kernel_host::kernel::kernel::Guest for Future {
        fn describe() -> String {
            "from the future".into()
        }
    }

    export!(Future);
}
