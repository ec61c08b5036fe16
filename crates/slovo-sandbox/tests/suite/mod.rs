mod basics;
mod hostile;
mod limits;
mod network;
mod storage;
mod support;
