mod basics;
mod egress;
mod hostile;
mod limits;
mod network;
mod runtime;
mod storage;
mod support;
