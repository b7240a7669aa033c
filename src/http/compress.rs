//! Compression for the clients that ask for it.
//!
//! actix-web's `Compress` looks at every response, even for a request that
//! sent no `Accept-Encoding` and so can only get the identity encoding: it
//! parses the `Content-Type` into a `Mime` (an allocation) and wraps the
//! body in an `Encoder` that passes it through. On a proxied request that
//! was about 2 % of the gateway's CPU. [`CompressIfAsked`] hands such a
//! request straight to the service and everything else to `Compress`: the
//! answers are the same byte for byte (`Compress` adds nothing to an
//! identity answer).

use std::rc::Rc;
use std::task::{Context, Poll};

use actix_http::encoding::Encoder;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;
use actix_web::middleware::Compress;
use futures_util::future::{Either, FutureExt, LocalBoxFuture, Map};

/// `Compress`, for requests that carry `Accept-Encoding` only.
#[derive(Default)]
pub(crate) struct CompressIfAsked;

/// The inner service, shared by the direct path and `Compress`'s.
pub(crate) struct Shared<S>(Rc<S>);

impl<S: Service<ServiceRequest>> Service<ServiceRequest> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        self.0.call(req)
    }
}

type Compressed<S> = <Compress as Transform<Shared<S>, ServiceRequest>>::Transform;
type Encoded<B> = EitherBody<Encoder<B>>;
type Answer<B> = Result<ServiceResponse<EitherBody<Encoded<B>, B>>, actix_web::Error>;

/// The middleware [`CompressIfAsked`] builds.
pub(crate) struct CompressIfAskedService<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    direct: Rc<S>,
    compressed: Compressed<S>,
}

impl<S, B> Transform<S, ServiceRequest> for CompressIfAsked
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Encoded<B>, B>>;
    type Error = actix_web::Error;
    type Transform = CompressIfAskedService<S, B>;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let direct = Rc::new(service);
        let compressed = Compress::default().new_transform(Shared(direct.clone()));
        Box::pin(async move {
            Ok(CompressIfAskedService {
                direct,
                compressed: compressed.await?,
            })
        })
    }
}

fn encoded<B>(r: Result<ServiceResponse<Encoded<B>>, actix_web::Error>) -> Answer<B> {
    r.map(ServiceResponse::map_into_left_body)
}

fn as_is<B>(r: Result<ServiceResponse<B>, actix_web::Error>) -> Answer<B> {
    r.map(ServiceResponse::map_into_right_body)
}

type EncodedFn<B> = fn(Result<ServiceResponse<Encoded<B>>, actix_web::Error>) -> Answer<B>;
type AsIsFn<B> = fn(Result<ServiceResponse<B>, actix_web::Error>) -> Answer<B>;

impl<S, B> Service<ServiceRequest> for CompressIfAskedService<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Encoded<B>, B>>;
    type Error = actix_web::Error;
    type Future = Either<
        Map<<Compressed<S> as Service<ServiceRequest>>::Future, EncodedFn<B>>,
        Map<S::Future, AsIsFn<B>>,
    >;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.direct.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if req.headers().contains_key(header::ACCEPT_ENCODING) {
            Either::Left(self.compressed.call(req).map(encoded as EncodedFn<B>))
        } else {
            Either::Right(self.direct.call(req).map(as_is as AsIsFn<B>))
        }
    }
}
