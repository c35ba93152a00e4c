//! Cutting one client off the cluster, by its `client.id`: the filter in
//! `native/client_cut_off.c`, put in front of the mock cluster's request handlers.

use rdkafka::producer::BaseProducer;
#[cfg(client_cut_off)]
use rdkafka::producer::Producer;

use crate::BrokerError;

/// Puts the filter in front of the request handlers of `owner`'s cluster; nobody is cut off
/// until [`set`] says so.
pub(crate) fn install(owner: &BaseProducer) {
    #[cfg(client_cut_off)]
    // SAFETY: `owner` is a live handle; the cluster it owns lives as long as it does, and the
    // filter only replaces the cluster's own copy of the handler table before clients connect.
    #[allow(unsafe_code)]
    unsafe {
        native::shop_mock_cut_off_install(owner.client().native_ptr());
    }
    #[cfg(not(client_cut_off))]
    let _ = owner;
}

/// Cuts `client_id` off `owner`'s cluster (`cut`) or lets it back.
pub(crate) fn set(owner: &BaseProducer, client_id: &str, cut: bool) -> Result<(), BrokerError> {
    let refused = || BrokerError::CutOff(client_id.to_owned());
    #[cfg(client_cut_off)]
    {
        let id = std::ffi::CString::new(client_id).map_err(|_| refused())?;
        // SAFETY: `owner` is a live handle and `id` a NUL-terminated string that outlives the
        // call; the filter copies it.
        #[allow(unsafe_code)]
        let result = unsafe {
            native::shop_mock_cut_off_set(owner.client().native_ptr(), id.as_ptr(), cut.into())
        };
        if result == 0 { Ok(()) } else { Err(refused()) }
    }
    #[cfg(not(client_cut_off))]
    {
        let _ = (owner, cut);
        Err(refused())
    }
}

/// Forgets the clients cut off `owner`'s cluster, before the cluster goes (a later cluster may
/// live at the same address).
pub(crate) fn clear(owner: &BaseProducer) {
    #[cfg(client_cut_off)]
    // SAFETY: `owner` is a live handle.
    #[allow(unsafe_code)]
    unsafe {
        native::shop_mock_cut_off_clear(owner.client().native_ptr());
    }
    #[cfg(not(client_cut_off))]
    let _ = owner;
}

#[cfg(client_cut_off)]
#[allow(unsafe_code)]
mod native {
    use std::ffi::{c_char, c_int};

    use rdkafka_sys::rd_kafka_t;

    unsafe extern "C" {
        pub(super) fn shop_mock_cut_off_install(rk: *mut rd_kafka_t) -> c_int;
        pub(super) fn shop_mock_cut_off_set(
            rk: *mut rd_kafka_t,
            client_id: *const c_char,
            cut: c_int,
        ) -> c_int;
        pub(super) fn shop_mock_cut_off_clear(rk: *mut rd_kafka_t);
    }
}
