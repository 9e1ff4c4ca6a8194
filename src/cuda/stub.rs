//! The CUDA backend of a build without the `cuda` feature: every entry point answers
//! [`super::NOT_BUILT`]. `Cuda` and `Buf` are uninhabited, so their methods are never reached.
use super::{AttnDims, DeviceInfo};
use crate::{Error, Result};
use std::marker::PhantomData;

fn not_built<T>() -> Result<T> {
    Err(Error::invalid("cuda", super::NOT_BUILT))
}

pub enum Never {}

pub struct Buf<T>(Never, PhantomData<T>);

pub fn buf_len<T>(b: &Buf<T>) -> usize {
    match b.0 {}
}

pub fn device_count() -> Result<usize> {
    not_built()
}

pub struct Cuda(Never);

#[allow(clippy::too_many_arguments, missing_docs)]
impl Cuda {
    pub fn open(_ordinal: usize) -> Result<Cuda> {
        not_built()
    }
    pub fn info(&self) -> &DeviceInfo {
        match self.0 {}
    }
    pub fn synchronize(&self) -> Result<()> {
        match self.0 {}
    }
    pub fn upload<T>(&self, _: &[T]) -> Result<Buf<T>> {
        match self.0 {}
    }
    pub fn zeros<T>(&self, _: usize) -> Result<Buf<T>> {
        match self.0 {}
    }
    pub fn download<T>(&self, _: &Buf<T>) -> Result<Vec<T>> {
        match self.0 {}
    }
    pub fn get_rows(&self, _: &str, _: usize, _: &super::DeviceBuf<u8>, _: usize, _: Option<&super::DeviceBuf<i32>>, _: usize, _: &mut super::DeviceBuf<f32>) -> Result<()> {
        match self.0 {}
    }
    pub fn product(&self, _: &str, _: (u32, u32, u32), _: usize, _: &super::DeviceBuf<u8>, _: usize, _: usize, _: &super::DeviceBuf<f32>, _: usize, _: usize, _: &mut super::DeviceBuf<f32>, _: usize) -> Result<()> {
        match self.0 {}
    }
    pub fn rmsnorm(&self, _: &super::DeviceBuf<f32>, _: Option<&super::DeviceBuf<f32>>, _: &mut super::DeviceBuf<f32>, _: Option<&mut super::DeviceBuf<f32>>, _: usize, _: usize, _: f32) -> Result<()> {
        match self.0 {}
    }
    pub fn rope(&self, _: &mut super::DeviceBuf<f32>, _: &super::DeviceBuf<i32>, _: usize, _: usize, _: usize, _: usize, _: f32, _: i32, _: i32) -> Result<()> {
        match self.0 {}
    }
    pub fn silu_gate(&self, _: &mut super::DeviceBuf<f32>, _: &super::DeviceBuf<f32>, _: usize) -> Result<()> {
        match self.0 {}
    }
    pub fn attention(&self, _: &super::DeviceBuf<f32>, _: &super::DeviceBuf<f32>, _: &super::DeviceBuf<f32>, _: &super::DeviceBuf<i32>, _: usize, _: usize, _: AttnDims, _: &mut super::DeviceBuf<f32>, _: &mut super::DeviceBuf<f32>) -> Result<()> {
        match self.0 {}
    }
    pub fn argmax(&self, _: &super::DeviceBuf<f32>, _: usize, _: usize, _: &mut super::DeviceBuf<i32>) -> Result<()> {
        match self.0 {}
    }
    pub fn adapter_down(&self, _: &super::DeviceBuf<f32>, _: usize, _: &super::DeviceBuf<f32>, _: usize, _: usize, _: &mut super::DeviceBuf<f32>) -> Result<()> {
        match self.0 {}
    }
    pub fn adapter_up(&self, _: &super::DeviceBuf<f32>, _: usize, _: usize, _: Option<&super::DeviceBuf<f32>>, _: &super::DeviceBuf<f32>, _: usize, _: Option<&super::DeviceBuf<f32>>, _: f32, _: &mut super::DeviceBuf<f32>) -> Result<()> {
        match self.0 {}
    }
    pub fn cross_entropy(&self, _: &super::DeviceBuf<f32>, _: usize, _: usize, _: &super::DeviceBuf<i32>, _: &mut super::DeviceBuf<f32>) -> Result<()> {
        match self.0 {}
    }
}
