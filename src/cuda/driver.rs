//! The CUDA backend of a build with the `cuda` feature: cudarc over the driver API, `libcuda.so.1`
//! loaded at run time. UNVERIFIED: written and compiled without a GPU; no line below the driver
//! check of `open` has run (see the module docs of `graft::cuda`).
use super::{ptx_entries, AttnDims, DeviceBuf, DeviceInfo, Elem, MODULES};
use crate::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

pub struct Buf<T>(CudaSlice<T>);

pub fn buf_len<T>(b: &Buf<T>) -> usize {
    b.0.len()
}

fn derr(op: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| Error::invalid(op, format!("CUDA driver: {e}"))
}

/// Runs `f`, turning a panic of cudarc (a symbol missing from an old driver) into an error.
fn guarded<T>(op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(Error::invalid(op, format!("CUDA driver: {}", msg.unwrap_or_else(|| "panic in cudarc".into()))))
    })
}

fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library under its usual names and drops the handle.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(Error::invalid("cuda", "no CUDA driver found (libcuda.so.1)"));
    }
    guarded("cuda", || {
        cudarc::driver::result::init().map_err(derr("cuda"))?;
        CudaContext::device_count().map(|n| n.max(0) as usize).map_err(derr("cuda"))
    })
}

pub struct Cuda {
    /// Keeps the context alive (the stream holds it too).
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    info: DeviceInfo,
}

fn cfg(grid: (u32, u32, u32), block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: grid, block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

/// A null device pointer, for optional kernel arguments.
const NULL: u64 = 0;

#[allow(clippy::too_many_arguments)]
impl Cuda {
    pub fn open(ordinal: usize) -> Result<Cuda> {
        let n = device_count()?;
        if ordinal >= n {
            return Err(Error::invalid("cuda", format!("no CUDA device {ordinal} ({n} found)")));
        }
        guarded("cuda", || {
            let ctx = CudaContext::new(ordinal).map_err(derr("cuda"))?;
            let stream = ctx.default_stream();
            let mut funcs = HashMap::new();
            for m in MODULES {
                let module = ctx
                    .load_module(cudarc::nvrtc::Ptx::from_binary(m.fatbin.to_vec()))
                    .map_err(|e| Error::invalid("cuda", format!("loading kernels {}: {e}", m.name)))?;
                for name in ptx_entries(m.ptx) {
                    let f = module.load_function(name).map_err(|e| Error::invalid("cuda", format!("kernel {name}: {e}")))?;
                    funcs.insert(name, f);
                }
            }
            let (major, minor) = ctx.compute_capability().map_err(derr("cuda"))?;
            let info = DeviceInfo {
                ordinal,
                name: ctx.name().map_err(derr("cuda"))?,
                compute_capability: (major as u32, minor as u32),
                total_mem: ctx.total_mem().map_err(derr("cuda"))?,
            };
            Ok(Cuda { _ctx: ctx, stream, funcs, info })
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(derr("cuda::synchronize"))
    }

    pub fn upload<T: Elem>(&self, data: &[T]) -> Result<Buf<T>> {
        self.stream.clone_htod(data).map(Buf).map_err(derr("cuda::upload"))
    }

    pub fn zeros<T: Elem>(&self, n: usize) -> Result<Buf<T>> {
        self.stream.alloc_zeros(n).map(Buf).map_err(derr("cuda::zeros"))
    }

    pub fn download<T: Elem>(&self, b: &Buf<T>) -> Result<Vec<T>> {
        self.stream.clone_dtoh(&b.0).map_err(derr("cuda::download"))
    }

    fn func(&self, name: &str) -> Result<&CudaFunction> {
        self.funcs.get(name).ok_or_else(|| Error::invalid("cuda", format!("no kernel {name} in the embedded modules")))
    }

    pub fn get_rows(&self, name: &str, n: usize, w: &DeviceBuf<u8>, stride: usize, ids: Option<&DeviceBuf<i32>>, m: usize, y: &mut DeviceBuf<f32>) -> Result<()> {
        let f = self.func(name)?;
        let (n_, m_, ldy) = (n as i64, m as i64, n as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&n_).arg(&w.inner.0).arg(&stride);
        match ids {
            Some(ids) => b.arg(&ids.inner.0),
            None => b.arg(&NULL),
        };
        b.arg(&m_).arg(&mut y.inner.0).arg(&ldy);
        // SAFETY: graft_cu_get_rows_* (dequant.cu) takes (i64 n, ptr w, size_t stride, ptr ids,
        // i64 m, ptr y, i64 ldy), pushed in that order; the caller checked w holds the rows read
        // (ids index rows the caller vouches for), y holds m*n floats.
        unsafe { b.launch(cfg((n.div_ceil(256).clamp(1, 65535) as u32, m as u32, 1), 256)) }.map_err(derr("cuda::get_rows"))?;
        Ok(())
    }

    pub fn product(&self, name: &str, grid: (u32, u32, u32), n: usize, w: &DeviceBuf<u8>, stride: usize, nrows: usize, x: &DeviceBuf<f32>, ldx: usize, m: usize, y: &mut DeviceBuf<f32>, ldy: usize) -> Result<()> {
        let f = self.func(name)?;
        let (n_, nrows_, ldx_, m_, ldy_) = (n as i64, nrows as i64, ldx as i64, m as i64, ldy as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&n_).arg(&w.inner.0).arg(&stride).arg(&nrows_).arg(&x.inner.0).arg(&ldx_).arg(&m_).arg(&mut y.inner.0).arg(&ldy_);
        // SAFETY: the gemv / gemm / gemm_dx kernels share the signature (i64 n, ptr w, size_t
        // w_stride, i64 nrows, ptr x, i64 ldx, i64 m, ptr y, i64 ldy); the caller checked every
        // buffer against the shapes, and the grid matches the kernel's launch comment.
        unsafe { b.launch(cfg(grid, 256)) }.map_err(derr("cuda::matmul"))?;
        Ok(())
    }

    pub fn rmsnorm(&self, x: &DeviceBuf<f32>, w: Option<&DeviceBuf<f32>>, y: &mut DeviceBuf<f32>, rstd: Option<&mut DeviceBuf<f32>>, n: usize, rows: usize, eps: f32) -> Result<()> {
        let f = self.func("graft_cu_rmsnorm_f32")?;
        let (ld, n_, rows_) = (n as i64, n as i64, rows as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.inner.0).arg(&ld);
        match w {
            Some(w) => b.arg(&w.inner.0),
            None => b.arg(&NULL),
        };
        b.arg(&mut y.inner.0).arg(&ld);
        match rstd {
            Some(r) => b.arg(&mut r.inner.0),
            None => b.arg(&NULL),
        };
        b.arg(&n_).arg(&rows_).arg(&eps);
        // SAFETY: (ptr x, i64 ldx, ptr w, ptr y, i64 ldy, ptr rstd, i64 n, i64 rows, f32 eps) as in
        // rmsnorm.cu; lengths checked by the caller; one block per row.
        unsafe { b.launch(cfg((rows.max(1) as u32, 1, 1), 256)) }.map_err(derr("cuda::rmsnorm"))?;
        Ok(())
    }

    pub fn rope(&self, x: &mut DeviceBuf<f32>, pos: &DeviceBuf<i32>, t: usize, n_heads: usize, head_dim: usize, n_rot: usize, base: f32, mode: i32, inverse: i32) -> Result<()> {
        let f = self.func("graft_cu_rope_f32")?;
        let (ld, t_, nh, hd, nr) = ((n_heads * head_dim) as i64, t as i64, n_heads as i64, head_dim as i64, n_rot as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&mut x.inner.0).arg(&ld).arg(&t_).arg(&nh).arg(&hd).arg(&nr).arg(&pos.inner.0).arg(&base).arg(&mode).arg(&inverse);
        // SAFETY: the signature of graft_cu_rope_f32 (rope.cu), in order; lengths checked by the
        // caller; one block per row.
        unsafe { b.launch(cfg((t.max(1) as u32, 1, 1), 128)) }.map_err(derr("cuda::rope"))?;
        Ok(())
    }

    pub fn silu_gate(&self, gate: &mut DeviceBuf<f32>, up: &DeviceBuf<f32>, n: usize) -> Result<()> {
        let f = self.func("graft_cu_silu_gate_f32")?;
        let n_ = n as i64;
        // The kernel allows y to alias gate; cudarc's borrow rules do not, so gate is passed as y
        // through a raw device pointer.
        let gp = {
            use cudarc::driver::DevicePtr;
            let (p, _sync) = gate.inner.0.device_ptr(&self.stream);
            p
        };
        let mut b = self.stream.launch_builder(f);
        b.arg(&gp).arg(&up.inner.0).arg(&gp).arg(&n_);
        // SAFETY: (ptr gate, ptr up, ptr y, i64 n); gate and up hold n floats (checked by the
        // caller); y == gate is allowed (element-wise, read before write); gate outlives the launch
        // (borrowed mutably for this call, and the stream is in order).
        unsafe { b.launch(cfg((n.div_ceil(256).clamp(1, 65535) as u32, 1, 1), 256)) }.map_err(derr("cuda::silu_gate"))?;
        Ok(())
    }

    pub fn attention(&self, q: &DeviceBuf<f32>, k: &DeviceBuf<f32>, v: &DeviceBuf<f32>, pos: &DeviceBuf<i32>, t: usize, ctx: usize, d: AttnDims, probs: &mut DeviceBuf<f32>, out: &mut DeviceBuf<f32>) -> Result<()> {
        let f = self.func("graft_cu_attention_f32")?;
        let (qd, kvd) = ((d.n_head * d.head_dim) as i64, (d.n_head_kv * d.head_dim) as i64);
        let (t_, nh, nkv, hd, ldp) = (t as i64, d.n_head as i64, d.n_head_kv as i64, d.head_dim as i64, ctx as i64);
        let scale = 1.0 / (d.head_dim as f32).sqrt();
        let mut b = self.stream.launch_builder(f);
        b.arg(&q.inner.0).arg(&qd).arg(&k.inner.0).arg(&v.inner.0).arg(&kvd).arg(&pos.inner.0).arg(&t_).arg(&nh).arg(&nkv).arg(&hd);
        b.arg(&scale).arg(&mut probs.inner.0).arg(&ldp).arg(&mut out.inner.0).arg(&qd);
        // SAFETY: the signature of graft_cu_attention_f32 (attention.cu), in order; buffers checked
        // by the caller; positions must be < ctx (the caller's contract: rows 0..=pos of k and v and
        // of each probs row are read or written).
        unsafe { b.launch(cfg((d.n_head as u32, t.max(1) as u32, 1), 256)) }.map_err(derr("cuda::attention"))?;
        Ok(())
    }

    pub fn argmax(&self, logits: &DeviceBuf<f32>, n: usize, rows: usize, out: &mut DeviceBuf<i32>) -> Result<()> {
        let f = self.func("graft_cu_argmax_f32")?;
        let (ld, n_, rows_) = (n as i64, n as i64, rows as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&logits.inner.0).arg(&ld).arg(&n_).arg(&rows_).arg(&mut out.inner.0);
        // SAFETY: (ptr logits, i64 ld, i64 n, i64 rows, ptr out) as in sample.cu; lengths checked.
        unsafe { b.launch(cfg((rows.max(1) as u32, 1, 1), 256)) }.map_err(derr("cuda::argmax"))?;
        Ok(())
    }

    pub fn adapter_down(&self, x: &DeviceBuf<f32>, m: usize, a: &DeviceBuf<f32>, r: usize, n: usize, t: &mut DeviceBuf<f32>) -> Result<()> {
        let f = self.func("graft_cu_adapter_down_f32")?;
        let (ldx, m_, lda, r_, n_, ldt) = (n as i64, m as i64, n as i64, r as i64, n as i64, r as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.inner.0).arg(&ldx).arg(&m_).arg(&a.inner.0).arg(&lda).arg(&r_).arg(&n_).arg(&mut t.inner.0).arg(&ldt);
        // SAFETY: the signature of graft_cu_adapter_down_f32 (adapter.cu); lengths checked.
        unsafe { b.launch(cfg((r.div_ceil(8).max(1) as u32, m.max(1) as u32, 1), 256)) }.map_err(derr("cuda::adapter_down"))?;
        Ok(())
    }

    pub fn adapter_up(&self, t: &DeviceBuf<f32>, m: usize, r: usize, tscale: Option<&DeviceBuf<f32>>, bt: &DeviceBuf<f32>, ncols: usize, oscale: Option<&DeviceBuf<f32>>, s: f32, y: &mut DeviceBuf<f32>) -> Result<()> {
        let f = self.func("graft_cu_adapter_up_f32")?;
        let (ldt, m_, r_, ldb, nc, ldy) = (r as i64, m as i64, r as i64, ncols as i64, ncols as i64, ncols as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&t.inner.0).arg(&ldt).arg(&m_).arg(&r_);
        match tscale {
            Some(ts) => b.arg(&ts.inner.0),
            None => b.arg(&NULL),
        };
        b.arg(&bt.inner.0).arg(&ldb).arg(&nc);
        match oscale {
            Some(os) => b.arg(&os.inner.0),
            None => b.arg(&NULL),
        };
        b.arg(&s).arg(&mut y.inner.0).arg(&ldy);
        // SAFETY: the signature of graft_cu_adapter_up_f32 (adapter.cu), in order; lengths checked.
        unsafe { b.launch(cfg((ncols.div_ceil(256).max(1) as u32, m.max(1) as u32, 1), 256)) }.map_err(derr("cuda::adapter_up"))?;
        Ok(())
    }

    pub fn cross_entropy(&self, logits: &DeviceBuf<f32>, vocab: usize, t: usize, targets: &DeviceBuf<i32>, losses: &mut DeviceBuf<f32>) -> Result<()> {
        let f = self.func("graft_cu_cross_entropy_forward_f32")?;
        let (v_, t_) = (vocab as i64, t as i64);
        let mut b = self.stream.launch_builder(f);
        b.arg(&logits.inner.0).arg(&v_).arg(&t_).arg(&targets.inner.0).arg(&mut losses.inner.0);
        // SAFETY: (ptr logits, i64 V, i64 T, ptr targets, ptr losses) as in cross_entropy.cu.
        unsafe { b.launch(cfg((t.max(1) as u32, 1, 1), 256)) }.map_err(derr("cuda::cross_entropy"))?;
        Ok(())
    }
}
