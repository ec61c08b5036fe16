mod basics;
mod hostile;
mod limits;
mod network;
mod runtime;
mod storage;
mod support;
