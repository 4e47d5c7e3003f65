//! `ansible_connection: local`: run on the controller. OWNER: transport helper.
use super::*;
pub struct LocalTransport {}
impl LocalTransport {
    pub fn new() -> Self { LocalTransport {} }
}
#[async_trait]
impl Transport for LocalTransport {
    async fn exec(&self, _command: &str, _stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> { todo!() }
    async fn close(&self) {}
}
