//! The CUDA backend: the kernels of `csrc/cuda/*.cu` on an NVIDIA GPU, behind one API that is the
//! same whether graft was built with the `cuda` feature or not, so call sites carry no `cfg`.
//!
//! - Without the feature, [`Cuda::open`] answers "graft was built without CUDA (enable the `cuda`
//!   feature)", and nothing CUDA is compiled.
//! - With it, build.rs embeds every kernel file as PTX (compute_80) and as a fatbin with sm_80 and
//!   sm_90 cubins ([`embedded_modules`]); the CUDA driver (`libcuda.so.1`) is loaded at run time
//!   (cudarc with dynamic loading), so the same binary runs on a machine without a GPU, where
//!   [`Cuda::open`] answers "no CUDA driver found (libcuda.so.1)" or "no CUDA device N".
//!
//! **Status: compiled, not run.** The kernels compile warning-free for sm_80/sm_90 and their entry
//! points are checked in the embedded PTX, but no GPU was available while they were written: the
//! device code, the launch wrappers of [`Cuda`] and the GPU tests in `tests/cuda.rs` have never
//! executed. Treat every number they produce as unverified until `cargo test --features cuda
//! --test cuda` has passed on a GPU.
use crate::quant::QuantType;
use crate::{Error, Result};

#[cfg(feature = "cuda")]
mod driver;
#[cfg(feature = "cuda")]
use driver as imp;
#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
use stub as imp;

/// Whether this build carries the CUDA backend (the `cuda` feature).
pub const BUILT_WITH_CUDA: bool = cfg!(feature = "cuda");

/// The message of every CUDA operation in a build without the `cuda` feature.
pub const NOT_BUILT: &str = "graft was built without CUDA (enable the `cuda` feature)";

/// One compiled `csrc/cuda/*.cu` file as embedded in the library.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedModule {
    /// The file's stem (`gemm` for `csrc/cuda/gemm.cu`).
    pub name: &'static str,
    /// PTX text for `compute_80` (JIT-compiled by the driver on GPUs without a cubin here).
    pub ptx: &'static str,
    /// A fatbin with sm_80 and sm_90 cubins and the PTX, what [`Cuda::open`] loads.
    pub fatbin: &'static [u8],
}

#[cfg(feature = "cuda")]
include!(concat!(env!("OUT_DIR"), "/cuda_modules.rs"));
#[cfg(not(feature = "cuda"))]
static MODULES: &[EmbeddedModule] = &[];

/// Every embedded kernel module (empty without the `cuda` feature).
pub fn embedded_modules() -> &'static [EmbeddedModule] {
    MODULES
}

/// The kernel entry points a PTX text defines (its `.entry NAME(` lines), in order.
pub fn ptx_entries(ptx: &str) -> Vec<&str> {
    ptx.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix(".visible").unwrap_or(l.trim_start()).trim_start();
            let name = rest.strip_prefix(".entry")?.trim_start();
            let end = name.find(|c: char| c == '(' || c.is_whitespace()).unwrap_or(name.len());
            Some(&name[..end])
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Where a model runs: `cpu` or `cuda[:N]` (the `--device` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The C kernels on the CPU.
    #[default]
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl Device {
    /// Parses `cpu`, `cuda` (device 0) or `cuda:N`.
    pub fn parse(s: &str) -> std::result::Result<Device, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Device::Cuda(n)),
                _ => Err(format!("unknown device {s:?} (cpu, cuda or cuda:N)")),
            },
        }
    }

    /// Checks that the device can be used: always for the CPU; for CUDA, opens it (the error says
    /// why not: no driver, no such device, built without CUDA).
    pub fn check(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(n) => Cuda::open(n).map(|_| ()),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// What [`Cuda::open`] found.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Marketing name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Device memory in bytes.
    pub total_mem: usize,
}

/// Element types a [`DeviceBuf`] holds.
#[cfg(feature = "cuda")]
pub trait Elem: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Copy + Default + Unpin + 'static {}
/// Element types a [`DeviceBuf`] holds.
#[cfg(not(feature = "cuda"))]
pub trait Elem: Copy + Default + 'static {}
impl Elem for f32 {}
impl Elem for f64 {}
impl Elem for i32 {}
impl Elem for u8 {}

/// A buffer of `T` in device memory, owned (freed on drop).
pub struct DeviceBuf<T: Elem> {
    inner: imp::Buf<T>,
}

impl<T: Elem> DeviceBuf<T> {
    /// Elements.
    pub fn len(&self) -> usize {
        imp::buf_len(&self.inner)
    }
    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An opened CUDA device with graft's kernels loaded: memory, copies and one safe wrapper per
/// kernel (lengths checked before launch, as the CPU wrappers do). Operations are queued on the
/// device's default stream in order; [`Cuda::download`] waits for them.
pub struct Cuda {
    inner: imp::Cuda,
}

fn cu_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::invalid(op, msg)
}

/// The suffix of a weight format in kernel names (`q4_K`, as in `csrc/`).
pub fn kernel_suffix(ty: QuantType) -> &'static str {
    use QuantType::*;
    match ty {
        F32 => "f32",
        F16 => "f16",
        BF16 => "bf16",
        Q4_0 => "q4_0",
        Q4_1 => "q4_1",
        Q5_0 => "q5_0",
        Q5_1 => "q5_1",
        Q8_0 => "q8_0",
        Q8_1 => "q8_1",
        Q4_K => "q4_K",
        Q5_K => "q5_K",
        Q6_K => "q6_K",
        Q8_K => "q8_K",
    }
}

fn weight_check(op: &'static str, ty: QuantType, n: usize, nrows: usize, w: &DeviceBuf<u8>) -> Result<usize> {
    if !crate::quant::WEIGHT_TYPES.contains(&ty) {
        return Err(cu_err(op, format!("{ty} is not a weight format")));
    }
    let stride = ty.row_bytes(n).ok_or_else(|| cu_err(op, format!("{n} is not a whole number of {ty} blocks")))?;
    if w.len() < stride * nrows {
        return Err(cu_err(op, format!("weights hold {} bytes, {nrows} rows of {n} {ty} need {}", w.len(), stride * nrows)));
    }
    Ok(stride)
}

fn len_check<T: Elem>(op: &'static str, what: &str, b: &DeviceBuf<T>, need: usize) -> Result<()> {
    if b.len() < need {
        return Err(cu_err(op, format!("{what} holds {} elements, needs {need}", b.len())));
    }
    Ok(())
}

fn blocks(n: usize, per: usize) -> u32 {
    n.div_ceil(per).max(1) as u32
}

/// The head layout of attention (as [`crate::train::ops::AttnShape`]).
#[derive(Clone, Copy, Debug)]
pub struct AttnDims {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (dividing `n_head`).
    pub n_head_kv: usize,
    /// Width of one head (at most 256).
    pub head_dim: usize,
}

impl Cuda {
    /// Opens CUDA device `ordinal` and loads graft's kernels. Errors (never panics) when graft was
    /// built without CUDA, when no CUDA driver can be loaded, or when there is no such device.
    pub fn open(ordinal: usize) -> Result<Cuda> {
        imp::Cuda::open(ordinal).map(|inner| Cuda { inner })
    }

    /// Number of CUDA devices (an error when there is no driver or no CUDA in this build).
    pub fn device_count() -> Result<usize> {
        imp::device_count()
    }

    /// The device.
    pub fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }

    /// Waits for every queued operation.
    pub fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }

    /// A device copy of `data`.
    pub fn upload<T: Elem>(&self, data: &[T]) -> Result<DeviceBuf<T>> {
        self.inner.upload(data).map(|inner| DeviceBuf { inner })
    }

    /// `n` zeroed elements.
    pub fn zeros<T: Elem>(&self, n: usize) -> Result<DeviceBuf<T>> {
        self.inner.zeros(n).map(|inner| DeviceBuf { inner })
    }

    /// A host copy of `buf`, after every queued operation.
    pub fn download<T: Elem>(&self, buf: &DeviceBuf<T>) -> Result<Vec<T>> {
        self.inner.download(&buf.inner)
    }

    /// Rows of a weight matrix dequantized to f32: `y[i] = W[ids[i]]` (`ids` `None`: rows `0..m`).
    /// `y`: `[m, n]`.
    #[allow(clippy::too_many_arguments)]
    pub fn get_rows(&self, ty: QuantType, n: usize, nrows: usize, w: &DeviceBuf<u8>, ids: Option<&DeviceBuf<i32>>, m: usize, y: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::get_rows";
        let stride = weight_check(op, ty, n, nrows, w)?;
        len_check(op, "y", y, m * n)?;
        if let Some(ids) = ids {
            len_check(op, "ids", ids, m)?;
        } else if m > nrows {
            return Err(cu_err(op, format!("{m} rows asked of {nrows}")));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        self.inner.get_rows(&format!("graft_cu_get_rows_{}", kernel_suffix(ty)), n, w, stride, ids, m, y)
    }

    /// `Y = X·Wᵀ` with W of format `ty` (`nrows` rows of `n`) dequantized on the fly, f32
    /// activations: `x` `[m, n]`, `y` `[m, nrows]`. `m <= 4` takes the warp-per-row GEMV, larger `m`
    /// the tiled GEMM.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(&self, ty: QuantType, n: usize, nrows: usize, w: &DeviceBuf<u8>, x: &DeviceBuf<f32>, m: usize, y: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::matmul";
        let stride = weight_check(op, ty, n, nrows, w)?;
        len_check(op, "x", x, m * n)?;
        len_check(op, "y", y, m * nrows)?;
        if m == 0 || nrows == 0 {
            return Ok(());
        }
        let gemv = m <= 4;
        let name = format!("graft_cu_{}_{}_f32", if gemv { "gemv" } else { "gemm" }, kernel_suffix(ty));
        let grid = if gemv { (blocks(nrows, 8), m as u32, 1) } else { (blocks(nrows, 64), blocks(m, 64), 1) };
        self.inner.product(&name, grid, n, w, stride, nrows, x, n, m, y, nrows)
    }

    /// `dX += dY·W` with W of format `ty` (`nrows` rows of `n`) dequantized on the fly: `dy`
    /// `[m, nrows]`, `dx` `[m, n]`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_dx(&self, ty: QuantType, n: usize, nrows: usize, w: &DeviceBuf<u8>, dy: &DeviceBuf<f32>, m: usize, dx: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::matmul_dx";
        let stride = weight_check(op, ty, n, nrows, w)?;
        len_check(op, "dy", dy, m * nrows)?;
        len_check(op, "dx", dx, m * n)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let name = format!("graft_cu_gemm_dx_{}", kernel_suffix(ty));
        self.inner.product(&name, (blocks(n, 64), blocks(m, 64), 1), n, w, stride, nrows, dy, nrows, m, dx, n)
    }

    /// RMSNorm of `rows` rows of `n`: `y = x·rstd·w`; `rstd` (if given, `[rows]`) saved for the
    /// backward pass. `x`, `y`: `[rows, n]`.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm(&self, x: &DeviceBuf<f32>, w: Option<&DeviceBuf<f32>>, y: &mut DeviceBuf<f32>, rstd: Option<&mut DeviceBuf<f32>>, n: usize, rows: usize, eps: f32) -> Result<()> {
        let op = "cuda::rmsnorm";
        len_check(op, "x", x, rows * n)?;
        len_check(op, "y", y, rows * n)?;
        if let Some(w) = w {
            len_check(op, "w", w, n)?;
        }
        if let Some(r) = rstd.as_ref() {
            len_check(op, "rstd", *r, rows)?;
        }
        self.inner.rmsnorm(x, w, y, rstd, n, rows, eps)
    }

    /// RoPE in place on `x` `[t, n_heads·head_dim]`, row `i` at position `pos[i]`; `neox` picks the
    /// pair layout, `inverse` rotates backwards.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(&self, x: &mut DeviceBuf<f32>, pos: &DeviceBuf<i32>, t: usize, n_heads: usize, head_dim: usize, n_rot: usize, freq_base: f32, neox: bool, inverse: bool) -> Result<()> {
        let op = "cuda::rope";
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(cu_err(op, "n_rot must be even and <= head_dim"));
        }
        len_check(op, "x", x, t * n_heads * head_dim)?;
        len_check(op, "pos", pos, t)?;
        self.inner.rope(x, pos, t, n_heads, head_dim, n_rot, freq_base, if neox { 2 } else { 0 }, inverse as i32)
    }

    /// `gate = silu(gate)·up`, element-wise.
    pub fn silu_gate(&self, gate: &mut DeviceBuf<f32>, up: &DeviceBuf<f32>, n: usize) -> Result<()> {
        len_check("cuda::silu_gate", "gate", gate, n)?;
        len_check("cuda::silu_gate", "up", up, n)?;
        self.inner.silu_gate(gate, up, n)
    }

    /// Causal attention: query row `i` of `q` (`[t, n_head·hd]`) at position `pos[i]` against rows
    /// `0..=pos[i]` of `k`, `v` (`[ctx, n_head_kv·hd]`); `probs` (`[n_head, t, ctx]`) receives the
    /// softmax weights, `out` (`[t, n_head·hd]`) the result. `ctx` must exceed every position.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(&self, q: &DeviceBuf<f32>, k: &DeviceBuf<f32>, v: &DeviceBuf<f32>, pos: &DeviceBuf<i32>, t: usize, ctx: usize, d: AttnDims, probs: &mut DeviceBuf<f32>, out: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::attention";
        if d.n_head == 0 || d.head_dim == 0 || d.head_dim > 256 || d.n_head_kv == 0 || d.n_head % d.n_head_kv != 0 {
            return Err(cu_err(op, format!("unsupported heads {d:?} (head_dim 1..=256, n_head a multiple of n_head_kv)")));
        }
        let (qd, kvd) = (d.n_head * d.head_dim, d.n_head_kv * d.head_dim);
        len_check(op, "q", q, t * qd)?;
        len_check(op, "k", k, ctx * kvd)?;
        len_check(op, "v", v, ctx * kvd)?;
        len_check(op, "pos", pos, t)?;
        len_check(op, "probs", probs, d.n_head * t * ctx)?;
        len_check(op, "out", out, t * qd)?;
        self.inner.attention(q, k, v, pos, t, ctx, d, probs, out)
    }

    /// Index of the largest logit of each of `rows` rows of `n` (the first on ties).
    pub fn argmax(&self, logits: &DeviceBuf<f32>, n: usize, rows: usize, out: &mut DeviceBuf<i32>) -> Result<()> {
        len_check("cuda::argmax", "logits", logits, n * rows)?;
        len_check("cuda::argmax", "out", out, rows)?;
        self.inner.argmax(logits, n, rows, out)
    }

    /// Adapter down-projection `t = x·Aᵀ`: `x` `[m, n]`, `a` `[r, n]`, `t` `[m, r]`.
    pub fn adapter_down(&self, x: &DeviceBuf<f32>, m: usize, a: &DeviceBuf<f32>, r: usize, n: usize, t: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::adapter_down";
        len_check(op, "x", x, m * n)?;
        len_check(op, "a", a, r * n)?;
        len_check(op, "t", t, m * r)?;
        self.inner.adapter_down(x, m, a, r, n, t)
    }

    /// Adapter up-projection `y += s·oscale ⊙ (tscale ⊙ t)·Bᵀᵀ`: `t` `[m, r]`, `bt` `[r, ncols]`,
    /// `y` `[m, ncols]`, `tscale` `[r]`, `oscale` `[ncols]` (VeRA's λ_d and λ_b).
    #[allow(clippy::too_many_arguments)]
    pub fn adapter_up(&self, t: &DeviceBuf<f32>, m: usize, r: usize, tscale: Option<&DeviceBuf<f32>>, bt: &DeviceBuf<f32>, ncols: usize, oscale: Option<&DeviceBuf<f32>>, s: f32, y: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::adapter_up";
        len_check(op, "t", t, m * r)?;
        len_check(op, "bt", bt, r * ncols)?;
        len_check(op, "y", y, m * ncols)?;
        if let Some(ts) = tscale {
            len_check(op, "tscale", ts, r)?;
        }
        if let Some(os) = oscale {
            len_check(op, "oscale", os, ncols)?;
        }
        self.inner.adapter_up(t, m, r, tscale, bt, ncols, oscale, s, y)
    }

    /// Per-row cross-entropy losses of `logits` `[t, vocab]` against `targets` (`< 0`: masked,
    /// loss 0). Targets must be below `vocab` (checked on the host before upload by the caller).
    pub fn cross_entropy(&self, logits: &DeviceBuf<f32>, vocab: usize, t: usize, targets: &DeviceBuf<i32>, losses: &mut DeviceBuf<f32>) -> Result<()> {
        let op = "cuda::cross_entropy";
        len_check(op, "logits", logits, vocab * t)?;
        len_check(op, "targets", targets, t)?;
        len_check(op, "losses", losses, t)?;
        self.inner.cross_entropy(logits, vocab, t, targets, losses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parses() {
        assert_eq!(Device::parse("cpu"), Ok(Device::Cpu));
        assert_eq!(Device::parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(Device::parse("CUDA:3"), Ok(Device::Cuda(3)));
        assert!(Device::parse("cuda:x").is_err());
        assert!(Device::parse("tpu").is_err());
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn ptx_entries_are_parsed() {
        let ptx = "//\n.visible .entry graft_cu_a(\n\t.param .u64 x\n)\n.entry graft_cu_b (\n.func helper(\n";
        assert_eq!(ptx_entries(ptx), ["graft_cu_a", "graft_cu_b"]);
    }
}
