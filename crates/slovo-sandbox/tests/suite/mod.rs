mod basics;
mod egress;
mod hostile;
mod limits;
mod network;
mod storage;
mod support;
